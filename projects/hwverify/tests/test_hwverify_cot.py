"""The zero-shot chain-of-thought protocol: byte-exact prompts, the official parser, the two-turn flow."""

import numpy as np
import pytest

from hwverify import cot


def official_and_prompt(encoded_image_one, encoded_image_two):
    # Written as in the official script: an f-string inside a function body indented by four spaces.
    prompt = f"""
    You are a Forensic Document Examiner. You will be provided with two handwritten samples of the lowercase word "and". Your task is to provide a explanation if the two handwritten samples are written by the same writer or by different writers as follows:

    - "Explanation" : 

    Handwriting sample 1:
    {encoded_image_one}

    Handwriting sample 2:
    {encoded_image_two}
    """  # noqa: W291, E501
    return prompt


def official_letter_prompt(encoded_image_one, encoded_image_two):
    prompt = f"""
    You are a Forensic Document Examiner. You will be provided with two handwritten samples images. Your task is to provide a explanation comparing two handwritten samples are written by the same writer or by different writers as follows:

    - "Explanation" : 

    Handwriting sample 1:
    {encoded_image_one}

    Handwriting sample 2:
    {encoded_image_two}
    """  # noqa: W291, E501
    return prompt


def test_prompts_are_byte_exact():
    assert cot.AND.explanation.format(image1="AAA", image2="BBB") == official_and_prompt("AAA", "BBB")
    assert cot.LETTER.explanation.format(image1="x1", image2="y2") == official_letter_prompt("x1", "y2")
    assert cot.AND.decision == (
        "\n    Based on the explanation below, what is the decision Yes or No or Unknown? Handwriting written by "
        "same writer means Yes and different writer means No else its unknown.\n    ")
    assert cot.LETTER.decision == "\n    Based on the explanation, what is the decision?\n    "
    assert cot.SYSTEM_PROMPT == "You are a Forensic Document Examiner."
    assert '- "Explanation" : \n' in cot.AND.explanation  # the trailing space of the official string
    assert (cot.AND.explanation_temperature, cot.LETTER.explanation_temperature) == (0.0, None)


@pytest.mark.parametrize("text, expected", [
    ("Yes", "Yes"), ("yes, same writer.", "Yes"), ("No.", "No"), ("NO - different writers", "No"),
    ("Unknown", "Unknown"), ("Yes, but unknown overall", "Unknown"), ("No or Unknown", "Unknown"),
    ("Same writer.", "Unknown"), ("", "Unknown"), ("Yes and no", "Both"), ("yes; No", "Both"),
    ("Yesterday, nobody knows", "Unknown"),  # whole words only: "Yesterday" and "nobody" do not match
    ("The decision is: Yes.", "Yes"), ("Notably, no.", "No"),
])
def test_parse_decision_every_official_case(text, expected):
    assert cot.parse_decision(text) == expected


def test_two_turn_flow_appends_the_explanation_before_the_decision_prompt():
    calls = []

    def chat(messages, temperature):
        calls.append(([dict(m) for m in messages], temperature))
        return "The loops of a differ." if len(calls) == 1 else "No"

    img = np.ones((8, 8), np.float32)
    out = cot.verify_pair(chat, img, img * 0.5)
    assert out == {"explanation": "The loops of a differ.", "decision_text": "No", "decision": "No"}
    (first, t1), (second, t2) = calls
    assert [m["role"] for m in first] == ["system", "user"]
    assert [m["role"] for m in second] == ["system", "user", "assistant", "user"]
    assert second[:2] == first and second[2]["content"] == "The loops of a differ."
    assert second[3]["content"] == cot.AND.decision
    assert (t1, t2) == (0.0, None)
    b1, b2 = cot.encode_png_base64(img), cot.encode_png_base64(img * 0.5)
    assert first[1]["content"] == official_and_prompt(b1, b2)


def test_png_encoding_round_trips_and_thumbnails():
    import base64

    import cv2

    img = np.linspace(0, 1, 20 * 30, dtype=np.float32).reshape(20, 30)
    back = cv2.imdecode(np.frombuffer(base64.b64decode(cot.encode_png_base64(img)), np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(back, (img * 255).round().astype(np.uint8))
    small = cv2.imdecode(np.frombuffer(base64.b64decode(cot.encode_png_base64(img, max_side=15)), np.uint8), 0)
    assert small.shape == (10, 15)


def test_run_protocol_keeps_unknown_rows_for_both_accountings():
    answers = iter(["expl", "Unknown", "expl", "Yes"])
    rows = cot.run_protocol(lambda m, t: next(answers), np.zeros((3, 4, 4)), np.array([[0, 1, 1], [1, 2, 0]]))
    assert [r["decision"] for r in rows] == ["Unknown", "Yes"] and [r["label"] for r in rows] == [1, 0]


def test_client_payload_and_opt_in_environment(monkeypatch):
    client = cot.ChatClient("http://localhost:9/v1/", model="m")
    assert client.url == "http://localhost:9/v1/chat/completions"
    assert client.payload([{"role": "user", "content": "x"}], None) == {
        "model": "m", "messages": [{"role": "user", "content": "x"}]}
    assert client.payload([], 0.0)["temperature"] == 0.0
    monkeypatch.delenv("HWVERIFY_CHAT_BASE_URL", raising=False)
    assert cot.ChatClient.from_env() is None
    monkeypatch.setenv("HWVERIFY_CHAT_BASE_URL", "http://h/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    env_client = cot.ChatClient.from_env()
    assert (env_client.model, env_client.api_key) == ("gpt-4o", "k")


def test_official_transport_sends_the_file_bytes_as_text(tmp_path):
    import base64

    payload = b"\x89PNG not really, any bytes"
    (tmp_path / "0001a_num1.png").write_bytes(payload)
    seen = []
    cot.verify_pair(lambda m, t: seen.append(m) or "Yes", tmp_path / "0001a_num1.png", tmp_path / "0001a_num1.png")
    b64 = base64.b64encode(payload).decode("utf-8")  # the script's load_image_as_base64
    assert seen[0][1]["content"] == official_and_prompt(b64, b64)


def test_image_url_transport_puts_both_images_in_image_parts():
    import base64

    import cv2

    known = np.full((20, 40), 255, np.uint8)
    known[5:15, 10:30] = 0
    questioned = np.full((30, 50), 200, np.uint8)
    seen = []
    out = cot.verify_pair(lambda m, t: seen.append(m) or "Yes, same writer", known, questioned, transport="image_url")
    assert out["decision"] == "Yes"
    content = seen[0][1]["content"]
    assert [p["type"] for p in content] == ["text", "image_url", "text", "image_url", "text"]
    # The text parts are the official prompt's text around the slots, byte for byte.
    assert content[0]["text"] + "X" + content[2]["text"] + "Y" + content[4]["text"] == official_and_prompt("X", "Y")
    for part, original in ((content[1], known), (content[3], questioned)):
        url = part["image_url"]["url"]
        assert url.startswith("data:image/png;base64,")
        pixels = cv2.imdecode(np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(pixels, original)  # the pixels the model sees are the scan's
    # Turn 2 is the same in both transports: the explanation, then the decision prompt.
    assert seen[1][2:] == [{"role": "assistant", "content": "Yes, same writer"},
                           {"role": "user", "content": cot.AND.decision}]
    with pytest.raises(ValueError, match="transport"):
        cot.verify_pair(lambda m, t: "", known, known, transport="base64")
