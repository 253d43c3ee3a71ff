"""The run's executor: in-process on a laptop, each step on a Dask worker for the team profile.

Why not dagster-dask's `dask_executor`: with Dagster 1.13 it cannot submit a step at all (Dask
walks the task arguments as tuples and Dagster's records forbid iteration), and it plans the
steps up front, so the dynamic evaluation shards could not fan out. Dagster's own
StepDelegatingExecutor (the engine behind k8s_job_executor) does the orchestration: dynamic
outputs, concurrency pools, retries, health checks. Dask only places each step on a worker, as
Kubernetes places a pod; the step's events go straight to the shared (PostgreSQL) event log.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, cast

import dagster as dg
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.execution.retries import RetryMode
from dagster._core.executor.in_process import InProcessExecutor
from dagster._core.executor.step_delegating import (
    CheckStepHealthResult,
    StepDelegatingExecutor,
    StepHandler,
    StepHandlerContext,
)
from dagster._core.instance import DagsterInstance
from dagster._grpc.types import ExecuteStepArgs
from dagster_shared.serdes import deserialize_value, serialize_value


def run_step_on_worker(serialized_args: str) -> str:
    """Runs inside a Dask worker: one step, in the worker's own process; returns its name.

    As dagster-dask did, in-process: the worker keeps the code location (and a loaded local
    model) imported between steps instead of paying an interpreter start per step, and a
    SIGKILLed worker takes its step with it. The events go to the shared event log.
    """
    from dagster._cli.api import _execute_step_command_body
    from distributed import get_worker

    args = deserialize_value(serialized_args, ExecuteStepArgs)
    with DagsterInstance.from_ref(args.instance_ref) as instance:  # type: ignore[arg-type]
        run = instance.get_run_by_id(args.run_id)
        if run is None:
            raise RuntimeError(f"run {args.run_id} is not in the instance's run storage")
        if not _already_done(instance, args):
            for _event in _execute_step_command_body(args, instance, run):
                pass  # each event is already written to the event log
    return str(get_worker().name)


def _already_done(instance: DagsterInstance, args: ExecuteStepArgs) -> bool:
    # Dask recomputes a finished task whose result died with its worker; the step must not
    # run (and report) twice, so a step the event log shows finished is not run again.
    done = instance.all_logs(args.run_id, of_type={DagsterEventType.STEP_SUCCESS,
                                                   DagsterEventType.STEP_FAILURE})
    return bool(set(args.step_keys_to_execute or ()) & {e.step_key for e in done})


class DaskStepHandler(StepHandler):
    """Launches each step as a Dask task on the scheduler at `address`."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._client: Any = None
        self._futures: dict[str, Any] = {}

    @property
    def name(self) -> str:
        return "DaskStepHandler"

    def _dask(self) -> Any:
        if self._client is None:
            from distributed import Client

            try:
                self._client = Client(self.address, timeout=30)
            except OSError as exc:
                raise dg.Failure(f"cannot reach the Dask scheduler at {self.address} "
                                 f"(LLMOPS_DASK_SCHEDULER): {exc}") from exc
        return self._client

    @staticmethod
    def _key(context: StepHandlerContext) -> str:
        return context.execute_step_args.step_keys_to_execute[0]  # type: ignore[index]

    def _release_finished(self) -> None:
        # A released future's result is forgotten: Dask will not recompute a finished step
        # when the worker holding its (tiny) result dies.
        for step in [s for s, f in self._futures.items() if f.status == "finished"]:
            self._futures.pop(step).release()

    def launch_step(self, step_handler_context: StepHandlerContext) -> Iterator[DagsterEvent]:
        self._release_finished()
        step = self._key(step_handler_context)
        args = step_handler_context.execute_step_args
        # retries=0: a lost worker fails the step; Dagster's retry policy decides what next.
        # The arguments go serialized: Dask walks tuples, which Dagster's records forbid.
        self._futures[step] = self._dask().submit(
            run_step_on_worker, serialize_value(args), key=f"{args.run_id}-{step}",
            pure=False, retries=0)
        yield DagsterEvent.step_worker_starting(
            step_handler_context.get_step_context(step),
            message=f"step submitted to the Dask scheduler at {self.address}", metadata={})

    def check_step_health(self, step_handler_context: StepHandlerContext) -> CheckStepHealthResult:
        self._release_finished()  # a finished step's events tell how it went
        future = self._futures.get(self._key(step_handler_context))
        if future is None or future.status == "pending":
            return CheckStepHealthResult.healthy()
        if future.status in ("error", "cancelled", "lost"):
            try:
                reason = repr(future.exception(timeout=5))
            except Exception as exc:  # noqa: BLE001 - the reason is only reported
                reason = repr(exc)
            return CheckStepHealthResult.unhealthy(f"the Dask task failed ({reason}): its "
                                                   "worker died or was stopped")
        return CheckStepHealthResult.healthy()

    def terminate_step(self, step_handler_context: StepHandlerContext) -> Iterator[DagsterEvent]:
        future = self._futures.pop(self._key(step_handler_context), None)
        if future is not None:
            future.cancel()
        return iter(())


def _requirements(config: Mapping[str, object]) -> Sequence[dg.ExecutorRequirement]:
    return dg.multiple_process_executor_requirements() if "dask" in config else []


def llmops_executor(default_dask: bool) -> dg.ExecutorDefinition:
    """`in_process` or `dask: {scheduler}` (launchpad: `execution: config:`); the default is
    Dask when LLMOPS_DASK_SCHEDULER was set as the code location loaded."""
    default = ({"dask": {"scheduler": {"env": "LLMOPS_DASK_SCHEDULER"}}} if default_dask
               else {"in_process": {}})

    @dg.executor(
        name="llmops",
        config_schema=dg.Field(dg.Selector({
            "in_process": dg.Field({}, is_required=False),
            "dask": {"scheduler": dg.Field(dg.StringSource, description=(
                         "tcp://host:8786 of a running Dask scheduler (LLMOPS_DASK_SCHEDULER)")),
                     "max_concurrent": dg.Field(int, is_required=False)},
        }), default_value=default),
        requirements=_requirements,
    )
    def _executor(init_context: dg.InitExecutorContext) -> dg.Executor:
        ((mode, raw),) = init_context.executor_config.items()
        config = cast("dict[str, Any]", raw or {})
        if mode == "in_process":
            return InProcessExecutor(retries=RetryMode.ENABLED, marker_to_close=None)
        return StepDelegatingExecutor(
            DaskStepHandler(config["scheduler"]),
            retries=RetryMode.ENABLED,
            max_concurrent=config.get("max_concurrent"),
            sleep_seconds=0.2, check_step_health_interval_seconds=2)

    return _executor


ENDPOINT_TAG = "llmops/endpoint"  # on each evaluation shard op: its endpoint in models.yaml


def executor_for(env: Mapping[str, str]) -> dg.ExecutorDefinition:
    """The code location's executor: LLMOPS_EXECUTOR=k8s (a pod per step), else `llmops`
    (Dask when LLMOPS_DASK_SCHEDULER is set, in-process otherwise)."""
    if env.get("LLMOPS_EXECUTOR", "").strip().lower() == "k8s":
        try:
            from dagster_k8s import k8s_job_executor  # type: ignore[import-not-found]
        except ImportError as exc:
            raise ImportError("LLMOPS_EXECUTOR=k8s needs dagster-k8s==0.29.27 in the image "
                              "(deploy/k8s/values.yaml)") from exc
        # Within a run, at most 4 shards of one endpoint at once; pools limit across runs.
        return k8s_job_executor.configured({"max_concurrent": 16, "tag_concurrency_limits": [
            {"key": ENDPOINT_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 4}]})
    return llmops_executor(default_dask=bool(env.get("LLMOPS_DASK_SCHEDULER")))
