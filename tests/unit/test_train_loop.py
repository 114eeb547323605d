"""The plain training loop on a tiny random Llama with the real tokenizer: no Ray, a few seconds."""
import pytest
import torch

from predator.llm import load_tokenizer, resolve_model
from train.loop import (AnswerLoss, Encoded, TrainState, collate, encode, heldout_loss, length_grouped,
                        load_checkpoint, make_optimizer, save_checkpoint, train_step)

MESSAGES = [
    {"role": "user", "content": "Which HS heading covers frozen shrimps and prawns?"},
    {"role": "assistant", "content": "0306 — Crustaceans"},
]


@pytest.fixture(scope="module")
def tokenizer(llm_cache_dir):
    return load_tokenizer(resolve_model(None), llm_cache_dir)


def tiny_lora(tokenizer, seed=0):
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
                         initializer_range=0.5)
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    return get_peft_model(LlamaForCausalLM(config), lora)


def test_encode_masks_the_prompt_and_keeps_the_answer(tokenizer):
    encoded = encode(MESSAGES, tokenizer, max_len=256)
    answer = tokenizer.decode(encoded.input_ids[encoded.answer_start:])
    assert answer.startswith("0306 — Crustaceans")
    assert "frozen shrimps" in tokenizer.decode(encoded.input_ids[:encoded.answer_start])


def test_encode_cuts_an_overlong_prompt_from_the_left(tokenizer):
    long = [{"role": "user", "content": "padding words " * 200 + "END OF QUESTION"}, MESSAGES[1]]
    encoded = encode(long, tokenizer, max_len=64)
    assert len(encoded.input_ids) <= 64
    assert tokenizer.decode(encoded.input_ids[encoded.answer_start:]).startswith("0306")
    assert "END OF QUESTION" in tokenizer.decode(encoded.input_ids[:encoded.answer_start])


def test_collate_targets_are_the_answer_tokens_shifted_by_one():
    batch = collate([Encoded([5, 6, 7, 8], 2), Encoded([1, 2, 3], 1)], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8], [1, 2, 3, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert list(zip(batch["rows"].tolist(), batch["cols"].tolist())) == [(0, 1), (0, 2), (1, 0), (1, 1)]
    assert batch["targets"].tolist() == [7, 8, 2, 3]


def test_length_grouping_sorts_within_a_group_and_keeps_every_example():
    examples = [Encoded(list(range(n)), 1) for n in [9, 2, 7, 4, 5, 3, 8, 6]]
    batches = list(length_grouped(examples, batch_size=2, group=4, seed=1))
    assert sorted(len(e.input_ids) for b in batches for e in b) == sorted(range(2, 10))
    assert all(abs(len(b[0].input_ids) - len(b[1].input_ids)) == 1 for b in batches)


def test_loss_goes_down_on_a_repeated_batch(tokenizer):
    model = tiny_lora(tokenizer).train()
    loss_fn = AnswerLoss(model)
    optimizer, scheduler = make_optimizer(model, 2e-2, 0.0, warmup=0, total=30)
    batch = collate([encode(MESSAGES, tokenizer, 128)] * 4, tokenizer.pad_token_id)
    losses = [train_step(loss_fn, [batch], optimizer, scheduler, 1.0, torch.device("cpu"), "bf16")["loss"]
              for _ in range(30)]
    assert losses[-1] < losses[0] * 0.5


def test_only_lora_weights_train(tokenizer):
    model = tiny_lora(tokenizer)
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)


def test_checkpoint_round_trip_restores_weights_optimizer_and_position(tokenizer, tmp_path):
    model = tiny_lora(tokenizer).train()
    optimizer, scheduler = make_optimizer(model, 1e-2, 0.0, warmup=2, total=10)
    batch = collate([encode(MESSAGES, tokenizer, 128)] * 2, tokenizer.pad_token_id)
    for _ in range(3):
        train_step(AnswerLoss(model), [batch], optimizer, scheduler, 1.0, torch.device("cpu"), "fp32")
    state = TrainState(step=3, epoch=1, micro_in_epoch=6, tokens=123)
    save_checkpoint(tmp_path, model, optimizer, scheduler, state)

    fresh = tiny_lora(tokenizer)  # same base weights, untrained LoRA
    encoded = [encode(MESSAGES, tokenizer, 128)]
    trained_loss = heldout_loss(model, encoded, tokenizer.pad_token_id, 4, torch.device("cpu"))
    assert heldout_loss(fresh, encoded, tokenizer.pad_token_id, 4, torch.device("cpu")) != pytest.approx(trained_loss)
    fresh_opt, fresh_sched = make_optimizer(fresh, 1e-2, 0.0, warmup=2, total=10)
    restored = load_checkpoint(tmp_path, fresh, fresh_opt, fresh_sched)
    assert restored == state
    assert fresh_sched.get_last_lr() == scheduler.get_last_lr()
    assert fresh_opt.state_dict()["state"].keys() == optimizer.state_dict()["state"].keys()
    before = {k: v for k, v in model.state_dict().items() if "lora_" in k}
    after = {k: v for k, v in fresh.state_dict().items() if "lora_" in k}
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert heldout_loss(fresh, encoded, tokenizer.pad_token_id, 4, torch.device("cpu")) == pytest.approx(trained_loss)
