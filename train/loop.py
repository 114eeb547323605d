"""The supervised fine-tuning loop in plain PyTorch: encoding, batching, loss, optimiser, checkpoints.

Nothing here imports Ray: the Ray Train worker (``train.job``) feeds it rows and reports what it yields,
and the benchmark runs the same loop without Ray as its baseline. Throughput on CPU comes from three
choices measured on this model: logits only at the answer positions (the 49k-word vocabulary projection
over every prompt token dominated the step), batches grouped by length, and bf16 autocast.
"""
from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import torch
from torch import nn
from torch.nn import functional as F

STATE_FILE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.pt"
ADAPTER_DIR = "adapter"


@dataclass(frozen=True)
class Encoded:
    """Token ids of prompt + answer; the loss covers ids from ``answer_start`` on."""

    input_ids: list[int]
    answer_start: int

    @property
    def answer_tokens(self) -> int:
        return len(self.input_ids) - self.answer_start


@dataclass
class TrainState:
    """Where a run is: saved with every checkpoint so a restart continues instead of starting over."""

    step: int = 0
    epoch: int = 0
    micro_in_epoch: int = 0  # micro-batches of this epoch already consumed by this worker
    tokens: int = 0
    resumed_from: list[int] = field(default_factory=list)


def encode(messages: list[dict], tokenizer, max_len: int) -> Encoded:
    """Chat-template the messages; the last one (assistant) is the target.

    Over-long examples keep the whole answer (up to half the budget) and lose the start of the prompt.
    """
    prompt = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=False)
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    if not full.startswith(prompt):
        raise ValueError("chat template does not extend the prompt with the answer; cannot mask the prompt")
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(full[len(prompt):].rstrip("\n"), add_special_tokens=False)["input_ids"]
    answer_ids = answer_ids[: max(1, max_len // 2)] if len(prompt_ids) + len(answer_ids) > max_len else answer_ids
    prompt_ids = prompt_ids[-(max_len - len(answer_ids)):]
    return Encoded(prompt_ids + answer_ids, len(prompt_ids))


def collate(batch: list[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ids and mask, and the (row, position) pairs whose next token is an answer token."""
    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    rows, cols, targets = [], [], []
    for i, example in enumerate(batch):
        n = len(example.input_ids)
        ids[i, :n] = torch.tensor(example.input_ids)
        mask[i, :n] = 1
        # The hidden state at position p predicts token p + 1.
        positions = range(example.answer_start - 1, n - 1)
        rows += [i] * len(positions)
        cols += positions
        targets += example.input_ids[example.answer_start:]
    return {"input_ids": ids, "attention_mask": mask, "rows": torch.tensor(rows), "cols": torch.tensor(cols),
            "targets": torch.tensor(targets)}


class AnswerLoss(nn.Module):
    """Mean cross-entropy over answer tokens, projecting to the vocabulary only where it is needed.

    Wrapping the loss (not the bare model) in DDP keeps gradient synchronisation on the path that runs.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def _causal_lm(self) -> nn.Module:
        return self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model

    def forward(self, input_ids, attention_mask, rows, cols, targets) -> torch.Tensor:
        lm = self._causal_lm()
        hidden = lm.get_decoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        logits = lm.get_output_embeddings()(hidden[rows, cols])
        return F.cross_entropy(logits.float(), targets)


def length_grouped(examples: Iterable[Encoded], batch_size: int, group: int, seed: int) -> Iterator[list[Encoded]]:
    """Micro-batches from a stream: ``group`` batches' worth sorted by length, then their order shuffled."""
    rng = random.Random(seed)
    buffer: list[Encoded] = []

    def flush() -> list[list[Encoded]]:
        ordered = sorted(buffer, key=lambda e: len(e.input_ids))
        batches = [ordered[i:i + batch_size] for i in range(0, len(ordered), batch_size)]
        rng.shuffle(batches)
        return batches

    for example in examples:
        buffer.append(example)
        if len(buffer) == batch_size * group:
            yield from flush()
            buffer = []
    if buffer:
        yield from flush()


def make_optimizer(model: nn.Module, learning_rate: float, weight_decay: float, warmup: int, total: int):
    """AdamW over the trainable (LoRA) parameters, with linear warm-up then cosine decay to zero."""
    from transformers import get_cosine_schedule_with_warmup

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay)
    return optimizer, get_cosine_schedule_with_warmup(optimizer, min(warmup, total), total)


def autocast(device: torch.device, precision: str):
    """bf16 autocast where asked for (CPU included); a no-op context for fp32."""
    enabled = precision == "bf16"
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def train_step(loss_fn: nn.Module, micro_batches: list[dict], optimizer, scheduler, max_grad_norm: float,
               device: torch.device, precision: str) -> dict:
    """One optimiser step over ``micro_batches`` (gradient accumulation); returns loss, lr, tokens."""
    optimizer.zero_grad(set_to_none=True)
    total_loss, tokens = 0.0, 0
    for batch in micro_batches:
        batch = {k: v.to(device) for k, v in batch.items()}
        with autocast(device, precision):
            loss = loss_fn(**batch) / len(micro_batches)
        loss.backward()
        total_loss += loss.item()
        tokens += int(batch["attention_mask"].sum())
    params = [p for p in loss_fn.parameters() if p.requires_grad]
    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_grad_norm))
    lr = scheduler.get_last_lr()[0]
    optimizer.step()
    scheduler.step()
    return {"loss": total_loss, "lr": lr, "tokens": tokens, "grad_norm": grad_norm}


@torch.no_grad()
def heldout_loss(model: nn.Module, encoded: list[Encoded], pad_id: int, batch_size: int, device: torch.device,
                 precision: str = "fp32") -> float:
    """Mean answer-token cross-entropy over held-out examples (weighted by answer tokens)."""
    loss_fn = AnswerLoss(model).eval()
    total, count = 0.0, 0
    for batch in length_grouped(encoded, batch_size, group=len(encoded) + 1, seed=0):
        tensors = {k: v.to(device) for k, v in collate(batch, pad_id).items()}
        with autocast(device, precision):
            loss = loss_fn(**tensors)
        n = len(tensors["targets"])
        total += float(loss) * n
        count += n
    return total / count if count else math.nan


def save_checkpoint(directory: Path, model: nn.Module, optimizer, scheduler, state: TrainState) -> None:
    """Adapter (peft format), optimiser and scheduler state, and the run position, in one folder."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory / ADAPTER_DIR)
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, directory / OPTIMIZER_FILE)
    (directory / STATE_FILE).write_text(json.dumps(asdict(state)))


def load_checkpoint(directory: Path, model: nn.Module, optimizer, scheduler) -> TrainState:
    """Restore what :func:`save_checkpoint` wrote into an already built peft model, optimiser, scheduler."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    directory = Path(directory)
    weights = directory / ADAPTER_DIR / "adapter_model.safetensors"
    set_peft_model_state_dict(model, load_file(str(weights)))
    saved = torch.load(directory / OPTIMIZER_FILE, weights_only=True)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    return TrainState(**json.loads((directory / STATE_FILE).read_text()))
