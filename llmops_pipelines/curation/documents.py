"""The document stage: normalise, length filters, PII scrub, exact and near duplicates, ids."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from llmops_pipelines.curation import pii
from llmops_pipelines.curation.dedupe import NearDuplicateIndex
from llmops_pipelines.curation.layout import DatasetConfig
from llmops_pipelines.curation.normalise import compare_key, normalise, normalise_inline
from llmops_pipelines.curation.records import Collector, DocDraft, reject_doc
from llmops_pipelines.hashing import content_hash

FREE_TEXT = ("markdown", "text")


def _where(doc: DocDraft) -> str:
    return f"{doc.source_path}:{doc.line}" if doc.line else doc.source_path


def clean(c: Collector, config: DatasetConfig) -> list[DocDraft]:
    """Normalised, scrubbed documents within the length limits; the rest go to rejects."""
    q = config.quality
    kept = []
    for doc in c.docs:
        doc.text = normalise(doc.text)
        doc.title = normalise_inline(doc.title)
        # Content rules point at where the content starts: line 1 of a whole file.
        if len(doc.text) < q.min_doc_chars:
            c.reject(doc.source_path, doc.line or 1, "too_short",
                     f"{len(doc.text)} chars < {q.min_doc_chars}", doc.text)
            continue
        if len(doc.text) > q.max_doc_chars:
            c.reject(doc.source_path, doc.line or 1, "too_long",
                     f"{len(doc.text)} chars > {q.max_doc_chars}", doc.text)
            continue
        before = sum(c.pii.values())
        doc.text = pii.scrub(doc.text, c.pii, config.pii_allow)
        doc.title = pii.scrub(doc.title, c.pii, config.pii_allow)
        if doc.pii_hits or sum(c.pii.values()) > before:
            c.hits["pii_scrubbed_documents"] += 1
        kept.append(doc)
    return kept


def dedupe(docs: list[DocDraft], c: Collector, threshold: float) -> tuple[list[DocDraft],
                                                                          list[DocDraft]]:
    """(kept, duplicates): exact duplicates (case, width and punctuation blind), then near ones.

    The first document wins; each duplicate keeps a link to it (`duplicate_of`).
    """
    exact: dict[str, DocDraft] = {}
    near = NearDuplicateIndex(threshold)
    by_place: dict[str, DocDraft] = {}
    kept, duplicates = [], []
    for doc in docs:
        key = content_hash(compare_key(doc.text))
        if key in exact:
            doc.duplicate_of = exact[key]
            reject_doc(c, doc, "duplicate_document", f"same text as {_where(exact[key])}")
            duplicates.append(doc)
            continue
        # Records (CSV rows, JSON objects) are entities: two customers with the same orders are
        # similar text but not copies. Near-duplicate removal is for free text.
        match = near.add(_where(doc), doc.text) if doc.format in FREE_TEXT else None
        if match is not None:
            doc.duplicate_of = by_place[match[0]]
            reject_doc(c, doc, "near_duplicate_document",
                       f"{match[1]:.0%} of its character 5-grams are shared with {match[0]} "
                       f"(threshold {threshold:.0%})")
            duplicates.append(doc)
            continue
        # Only kept documents are indexed, so a duplicate always points at a kept document.
        exact[key] = by_place[_where(doc)] = doc
        doc.content_hash = content_hash(doc.text)
        kept.append(doc)
    return kept, duplicates


def file_aliases(rel: str) -> list[str]:
    """Names a file goes by, most specific last: stem, path without suffix, path."""
    return [Path(rel).stem, rel.rsplit(".", 1)[0].replace("/", "--"), rel.replace("/", "--")]


def _names(doc: DocDraft) -> set[str]:
    names = {doc.source_path, Path(doc.source_path).name, *file_aliases(doc.source_path)}
    return {f"{n}#{doc.key}" for n in names} if doc.key is not None else names


def assign_ids(docs: list[DocDraft], c: Collector, duplicates: Sequence[DocDraft] = ()
               ) -> tuple[list[DocDraft], dict[str, tuple[str, ...]]]:
    """Short ids people recognise (the file stem, unique in the dataset, + #record key); and aliases.

    The alias map resolves what a Q&A `source` may say: the id, the path, the file name or stem;
    a source naming a duplicate resolves to the document it duplicates; a name several documents
    share maps to all of them (ambiguous).
    """
    files = sorted({d.source_path for d in docs})
    shared = Counter(a for rel in files for a in set(file_aliases(rel)))
    # The first name no other file shares: a stem two files share falls back to the path.
    file_id = {rel: next((a for a in file_aliases(rel) if shared[a] == 1), rel) for rel in files}
    seen: dict[str, str] = {}
    aliases: dict[str, set[str]] = {}
    kept = []
    for doc in docs:
        base = file_id[doc.source_path]
        doc.doc_id = f"{base}#{doc.key}" if doc.key is not None else base
        if doc.doc_id in seen:
            reject_doc(c, doc, "duplicate_id", f"document id {doc.doc_id!r} already used at "
                       f"{seen[doc.doc_id]}")
            continue
        seen[doc.doc_id] = _where(doc)
        kept.append(doc)
    named = [(doc, _names(doc) | {doc.doc_id}) for doc in kept]
    kept_ids = {id(doc) for doc in kept}
    named += [(d.duplicate_of, _names(d)) for d in duplicates
              if d.duplicate_of is not None and id(d.duplicate_of) in kept_ids]
    for doc, names in named:
        for name in names:
            # A name two documents share is ambiguous: it resolves to neither, and says so.
            aliases.setdefault(name, set()).add(doc.doc_id)
    return kept, {name: tuple(sorted(ids)) for name, ids in aliases.items()}
