"""Request validation of the copilot (messages, model ids, adapter names) without a cluster."""
import pytest
from pydantic import ValidationError

from predator.adapters import AdapterNotFound
from predator.copilot.catalog import UnknownModel, available_adapters, model_ids, resolve_adapter, split_model_id
from predator.copilot.conversation import RequestError, conversation
from predator.settings import Settings
from serve_apps.copilot_models import CopilotRequest, OpenAIChatRequest


def check(messages, max_messages=4, max_chars=50):
    return conversation(messages, max_messages, max_chars)


@pytest.mark.parametrize("messages,field,needle", [
    ([], "messages", "at least one message"),
    ([("user", "   ")], "messages[0].content", "question is empty"),
    ([("user", "hi"), ("assistant", "hello")], "messages[1].role", "last message must be the user's"),
    ([("tool", "x"), ("user", "q")], "messages[0].role", "must be one of system, user, assistant"),
    ([("user", "x" * 51)], "messages[0].content", "longer than 50 characters"),
    ([("user", "q")] * 5, "messages", "at most 4 messages"),
])
def test_bad_messages_are_a_400_naming_the_field_and_the_reason(messages, field, needle):
    with pytest.raises(RequestError) as caught:
        check(messages)
    assert caught.value.field == field and needle in caught.value.reason and caught.value.status == 400


def test_a_valid_conversation_keeps_its_turns_and_reads_developer_as_system():
    turns = check([("developer", "be brief"), ("user", "q1"), ("assistant", "a1"), ("user", "q2")])
    assert [t.role for t in turns] == ["system", "user", "assistant", "user"] and turns[-1].content == "q2"


def test_request_models_reject_unknown_fields_and_bad_ranges_but_accept_openai_extras():
    with pytest.raises(ValidationError):
        CopilotRequest(messages=[{"role": "user", "content": "q"}], colour="red")
    with pytest.raises(ValidationError):
        CopilotRequest(messages=[{"role": "user", "content": "q"}], temperature=5)
    with pytest.raises(ValidationError):
        OpenAIChatRequest(model="m", messages=[{"role": "user", "content": "q"}], n=2)
    request = OpenAIChatRequest(model="m", messages=[{"role": "user", "content": [{"type": "text", "text": "q"}],
                                                      "name": "ann"}], presence_penalty=0.5)
    assert request.messages[0].text() == "q"


def test_model_ids_name_the_base_and_base_colon_adapter():
    assert model_ids("base", ["a", "b"]) == ["base", "base:a", "base:b"]
    assert split_model_id("base", "base") is None
    assert split_model_id("base:hs-v1/2", "base") == "hs-v1/2"
    for wrong in ("gpt-4o", "other:a", "base:"):
        with pytest.raises(UnknownModel):
            split_model_id(wrong, "base")


def test_adapters_resolve_from_their_folder_and_an_unknown_name_lists_those_available(tmp_path):
    settings = Settings(data_dir=tmp_path)
    folder = tmp_path / "adapters" / "hs-v1"
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text("{}")
    (tmp_path / "adapters" / "not-an-adapter").mkdir()
    assert available_adapters(settings) == ["hs-v1"]
    assert resolve_adapter("hs-v1", settings) == folder
    for name in ("nope", "../adapters/hs-v1", str(folder), "hs-v1/x"):
        with pytest.raises(AdapterNotFound) as caught:
            resolve_adapter(name, settings)
        assert caught.value.available == ["hs-v1"]
