"""The generator: batched decoding, streaming and LoRA adapters, on a tiny random Llama (fast, no cluster)."""
import pytest
import torch

from predator.copilot.generation import AdapterNotLoaded, GenerationRequest, Generator


@pytest.fixture(scope="module")
def tokenizer(llm_cache_dir):
    from predator.llm import load_tokenizer, resolve_model

    return load_tokenizer(resolve_model(None), llm_cache_dir)


def tiny_model(tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return LlamaForCausalLM(config).eval()


@pytest.fixture
def generator(tokenizer):
    made = Generator(tiny_model(tokenizer), tokenizer, max_batch_size=4)
    yield made
    made.close()


def make_adapter(model, path, seed):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    peft_model.save_pretrained(path)
    return path


def prompts(tokenizer):
    texts = ["Which HS code?", "A much longer question about the origin country of the goods, please.", "Hi"]
    return [tokenizer(t)["input_ids"] for t in texts]


def test_streamed_pieces_add_up_to_the_result_and_max_tokens_ends_with_length(generator, tokenizer):
    stream = generator.submit(GenerationRequest(prompts(tokenizer)[0], max_new_tokens=12))
    pieces = list(stream)
    result = stream.result
    assert "".join(pieces) == result.text
    assert result.completion_tokens <= 12 and result.prompt_tokens == len(prompts(tokenizer)[0])
    assert result.finish_reason in ("length", "stop") and (result.finish_reason == "stop") == (result.completion_tokens < 12)
    assert 0 < result.first_token_s <= result.queued_s + result.generate_s


def test_concurrent_requests_run_as_one_batch_and_match_their_one_by_one_answers(generator, tokenizer):
    alone = [generator.generate(GenerationRequest(ids, max_new_tokens=10)).text for ids in prompts(tokenizer)]
    with generator._cond:  # re-entrant: the scheduler cannot take a job until all three are queued
        streams = [generator.submit(GenerationRequest(ids, max_new_tokens=10)) for ids in prompts(tokenizer)]
    results = []
    for stream in streams:
        list(stream)
        results.append(stream.result)
    assert [r.text for r in results] == alone
    assert [r.batch_size for r in results] == [3, 3, 3]


def test_sampling_with_the_same_seed_gives_the_same_answer(generator, tokenizer):
    ids = prompts(tokenizer)[0]
    sampled = [generator.generate(GenerationRequest(ids, max_new_tokens=8, temperature=1.0, seed=3)).text
               for _ in range(2)]
    assert sampled[0] == sampled[1]


def test_two_adapters_on_one_base_model_give_different_outputs_and_the_base_stays_intact(generator, tokenizer, tmp_path):
    ids = prompts(tokenizer)[1]
    base_before = generator.generate(GenerationRequest(ids, max_new_tokens=10)).text
    generator.load_adapter("a", make_adapter(tiny_model(tokenizer), tmp_path / "a", seed=1))
    generator.load_adapter("b", make_adapter(tiny_model(tokenizer), tmp_path / "b", seed=2))
    assert generator.adapters == ["a", "b"]
    out = {name: generator.generate(GenerationRequest(ids, adapter=name, max_new_tokens=10)).text for name in "ab"}
    assert out["a"] != out["b"] and base_before not in (out["a"], out["b"])
    assert generator.generate(GenerationRequest(ids, max_new_tokens=10)).text == base_before


def test_unloading_an_adapter_in_use_waits_for_its_requests(generator, tokenizer, tmp_path):
    generator.load_adapter("a", make_adapter(tiny_model(tokenizer), tmp_path / "a", seed=1))
    with generator._model_lock:
        stream = generator.submit(GenerationRequest(prompts(tokenizer)[0], adapter="a", max_new_tokens=5))
        generator.unload_adapter("a")
        assert generator.adapters == []  # no new request may use it...
        with pytest.raises(AdapterNotLoaded):
            generator.submit(GenerationRequest(prompts(tokenizer)[0], adapter="a"))
    list(stream)
    assert stream.result.completion_tokens >= 1  # ...but the queued one finished with it
    generator.load_adapter("a", tmp_path / "a")
    assert generator.adapters == ["a"]
