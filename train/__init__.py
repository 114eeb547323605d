"""LoRA fine-tuning of the copilot's language model with Ray Train: datasets, training job, evaluation."""
