from adaptgate.bench.server import Scraper


def scraper(durations_s: list[float]) -> Scraper:
    s = Scraper("http://x", {}, interval=1.0)
    s.raw = [
        (10.0 + i, 10.0 + i + d, 'vllm:num_requests_running{a="b"} 3\n')
        for i, d in enumerate(durations_s)
    ]
    return s


def test_expensive_scrapes_warn_with_their_cost():
    warning = scraper([0.010] * 10).cost_warning(run_s=10.0)  # 100 ms of 10 s: 1%
    assert warning is not None and "10.0 ms per scrape (1.0% of the run)" in warning.text


def test_cheap_scrapes_do_not_warn():
    assert scraper([0.001] * 10).cost_warning(run_s=10.0) is None  # 0.1%
    assert scraper([]).cost_warning(run_s=10.0) is None


def test_series_keeps_each_scrape_duration():
    series = scraper([0.004, 0.006]).series(epoch=10.0)
    assert [round(m.duration_ms, 6) for m in series] == [4.0, 6.0]
    assert abs(series[0].t - 0.004) < 1e-9 and series[0].values["vllm:num_requests_running"] == 3
