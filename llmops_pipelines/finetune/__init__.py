"""Fine-tuning: the training file, token counts, the local LoRA job and remote (OpenAI/Azure) jobs."""
