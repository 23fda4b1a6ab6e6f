from bench_timelines import EPOCH, completion, request_a, tail

from adaptgate.bench.timeline import Exchange, finalize


def _ex(reads, status=200, **kw) -> Exchange:
    ex = Exchange(0, EPOCH, EPOCH, sent_at=EPOCH, status=status, **kw)
    ex.reads = reads
    ex.end_at = EPOCH + 1
    return ex


def test_failure_reasons():
    cut = finalize(_ex([(EPOCH + 0.1, completion("a"))]), EPOCH)
    assert not cut.ok and cut.error == "stream_ended_without_done"
    bad = finalize(_ex([(EPOCH + 0.1, completion("a") + b"data: {oops\n\n" + tail(1, 1))]), EPOCH)
    assert bad.error == "malformed_sse"
    empty = finalize(_ex([(EPOCH + 0.1, tail(1, 0))]), EPOCH)
    assert empty.error == "no_tokens"
    event = finalize(
        _ex([(EPOCH + 0.1, b'data: {"error": {"message": "oom"}}\n\n' + tail(1, 0))]), EPOCH
    )
    assert event.error == "server_error_event" and event.error_detail == "oom"
    transport = _ex([], status=None)
    transport.error = "connect_error"
    assert finalize(transport, EPOCH).error == "connect_error"


def test_keep_text_and_relative_times():
    rec = finalize(request_a(), EPOCH, keep_text=True)
    assert rec.output_text == " a b c d"
    assert rec.scheduled_at == 0.0 and abs(rec.sent_at - 0.002) < 1e-9
    assert finalize(request_a(), EPOCH).output_text == ""


def test_output_tokens_fall_back_to_chunks_without_usage():
    reads = [(EPOCH + 0.1, completion("a") + completion("b") + b"data: [DONE]\n\n")]
    rec = finalize(_ex(reads), EPOCH)
    assert rec.ok and rec.usage_completion_tokens is None and rec.output_tokens == 2
