"""The page at ``/`` and the offline ``/docs``, driven in a real headless Chromium.

A real uvicorn server (subprocess, 127.0.0.1, a free port) serves a database holding one
forecast made by the shipped model. Chromium resolves no host but the local one, so anything
that tried to leave the origin would fail and be logged. Skips, saying why, where Debian's
``chromium`` and ``chromium-driver`` or the ``selenium`` package are missing.

``PM25_PAGE_SCREENSHOTS=docs/img python -m pytest tests/test_page.py`` refreshes the README's
screenshots; otherwise they go to a temporary folder.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import DAY, published_database

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "case3" / "model.keras"
TOKEN = "page-Test-token-0123456789-abcdefghij"
CHROMIUM = os.environ.get("PM25_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("PM25_CHROMEDRIVER", "/usr/bin/chromedriver")


def _missing_browser() -> str | None:
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (Path(path).is_file() or shutil.which(path)):
            return f"{path} not found: apt-get install -y {package}"
    return None


pytestmark = pytest.mark.skipif(_missing_browser() is not None, reason=str(_missing_browser()))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The API in its own process, on a database with the shipped model's forecast."""
    root = tmp_path_factory.mktemp("page")
    settings = published_database(root, MODEL, TOKEN)
    from service.storage.db import make_engine, session_factory
    from service.verification.job import Verifier

    engine = make_engine(settings.database_url.get_secret_value())
    Verifier(settings, session_factory(engine)).verify(DAY)  # the panel shows a real score
    engine.dispose()
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "PM25_DATABASE_URL": settings.database_url.get_secret_value(),
        "PM25_INBOX": str(settings.inbox),
        "PM25_ADMIN_TOKEN": TOKEN,
    }
    cmd = [sys.executable, "-m", "uvicorn", "service.api.app:create_app", "--factory",
           "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]  # fmt: skip
    with (root / "server.log").open("w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                get_json(f"{url}/v1/health")
                break
            except (urllib.error.URLError, ConnectionError):
                if proc.poll() is not None:
                    pytest.fail("the server stopped:\n" + (root / "server.log").read_text())
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser(server: str) -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver", reason="pip install selenium")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which(CHROMIUM) or CHROMIUM
    profile = tempfile.mkdtemp(prefix="pm25-chromium-")
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-default-apps", "--disable-extensions", f"--user-data-dir={profile}",
        "--window-size=1280,1500", "--lang=ko-KR",
        # no network: every host but the local server fails to resolve
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    ):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = os.environ.get("PM25_PAGE_SCREENSHOTS")
    path = Path(where) if where else tmp_path_factory.mktemp("shots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def requests_made(driver: Any) -> list[str]:
    """URLs the browser asked for since the last call (from Chromium's performance log).

    The browser's own pages (``chrome://``, such as the new-tab page a fresh browser opens
    first) are left out: a page under test cannot ask for them.
    """
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            url = message["params"]["request"]["url"]
            if not url.startswith("chrome://"):
                urls.append(url)
    return urls


def console_errors(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def wait_for(driver: Any, script: str, timeout: float = 10.0) -> Any:
    """Poll a JavaScript expression until it is truthy; return its value."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = driver.execute_script(f"return {script}")
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for: {script}")


def open_page(driver: Any, url: str) -> None:
    driver.get(url)
    wait_for(driver, "document.body.dataset.ready === '1'")
    wait_for(driver, "document.querySelector('#status-table tbody tr') !== null")
    wait_for(driver, "document.querySelector('#verification').textContent.length > 0")


def set_language(driver: Any, lang: str) -> None:
    if driver.execute_script("return window.pm25.lang") != lang:
        driver.find_element("id", "lang").click()
    assert driver.execute_script("return document.documentElement.lang") == lang


def test_the_page_loads_fast_small_and_offline(browser: Any, server: str, shots: Path) -> None:
    open_page(browser, server + "/")  # warm the server's caches (a fresh process decodes once)
    requests_made(browser)
    console_errors(browser)
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
    open_page(browser, server + "/")
    ready_ms = browser.execute_script("return window.pm25.readyMs")
    sizes = browser.execute_script(
        "return performance.getEntries().filter(e => e.transferSize !== undefined)"
        ".map(e => [e.name, e.transferSize])"
    )
    transferred = sum(size for _, size in sizes)
    print(f"\npage usable after {ready_ms:.0f} ms; {len(sizes)} requests, {transferred} bytes")
    assert ready_ms < 1000, f"usable after {ready_ms:.0f} ms"
    assert 0 < transferred < 1_000_000, sizes
    urls = requests_made(browser)
    assert urls and all(u.startswith(server) or u.startswith("data:") for u in urls), urls
    assert console_errors(browser) == []
    set_language(browser, "ko")
    text = browser.find_element("tag name", "body").text
    assert "합성(SYNTHETIC)" in text and "convlstm-case3" in text
    set_language(browser, "en")
    assert "trained on SYNTHETIC data" in browser.find_element("tag name", "body").text
    set_language(browser, "ko")
    browser.save_screenshot(str(shots / "page.png"))


def test_the_slider_changes_the_maps_hour(browser: Any, server: str) -> None:
    from selenium.webdriver.common.keys import Keys

    canvas = browser.find_element("id", "map")
    slider = browser.find_element("id", "hour")
    browser.execute_script(
        "arguments[0].value = 5; arguments[0].dispatchEvent(new Event('input'))", slider
    )
    before = (
        canvas.get_attribute("data-hour"),
        browser.execute_script("return arguments[0].toDataURL()", canvas),
    )
    slider.send_keys(Keys.ARROW_RIGHT)
    after = (
        canvas.get_attribute("data-hour"),
        browser.execute_script("return arguments[0].toDataURL()", canvas),
    )
    assert before[0] == "5" and after[0] == "6"
    assert before[1] != after[1]  # the picture changed too
    assert "06:00 KST" in browser.find_element("id", "hour-label").text
    browser.find_element("id", "mean").click()
    assert canvas.get_attribute("data-hour") == "mean"
    browser.find_element("id", "mean").click()


def test_choosing_a_station_shows_its_forecast(browser: Any, server: str, shots: Path) -> None:
    from selenium.webdriver.common.keys import Keys

    for query in ("중구", "junggu", "111121"):
        box = browser.find_element("id", "search")
        box.clear()
        box.send_keys(query)
        names = [li.text for li in browser.find_elements("css selector", "#results li")]
        assert any(n.startswith("중구") and "111121" in n for n in names), (query, names)
    box.send_keys(Keys.ENTER)
    wait_for(browser, "document.querySelector('#selection').dataset.code === '111121'")
    shown = [
        float(td.get_attribute("data-value"))
        for td in browser.find_elements("css selector", "#selection td[data-value]")
    ]
    api = get_json(f"{server}/v1/stations/111121/forecast?date=latest")
    assert shown == api["values"]
    mean = browser.find_element("css selector", "#selection [data-daily-mean]")
    assert float(mean.get_attribute("data-daily-mean")) == api["daily_mean"]
    assert api["grade_ko"] in browser.find_element("id", "selection").text
    browser.save_screenshot(str(shots / "page_station.png"))


def test_clicking_the_map_gives_the_apis_point_forecast(
    browser: Any, server: str, shots: Path
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    set_language(browser, "en")
    assert browser.find_element("css selector", "h1").text == "Tomorrow's PM2.5 forecast"
    canvas = browser.find_element("id", "map")
    # a spot inland, away from every station (a click near one chooses the station)
    dx, dy = browser.execute_script(
        """
        const S = window.pm25, c = arguments[0], r = c.getBoundingClientRect();
        const [w, h] = [c.width / (window.devicePixelRatio || 1), c.height / (window.devicePixelRatio || 1)];
        for (let gy = 30; gy < 50; gy += 0.37) for (let gx = 25; gx < 45; gx += 0.41) {
          const px = 34 + gx * 9, py = 8 + (S.grid.nrows - gy) * 9;
          const near = S.geo.stations.some((s) => Math.hypot(34 + s.x * 9 - px, 8 + (S.grid.nrows - s.y) * 9 - py) < 14);
          if (!near) return [px * r.width / w - r.width / 2, py * r.height / h - r.height / 2];
        }
        """,
        canvas,
    )
    ActionChains(browser).move_to_element_with_offset(canvas, int(dx), int(dy)).click().perform()
    wait_for(
        browser,
        "document.querySelector('#selection td[data-value]') !== null && window.pm25.selection.kind === 'point'",
    )
    sel = browser.find_element("id", "selection")
    lat, lon = sel.get_attribute("data-lat"), sel.get_attribute("data-lon")
    shown = [
        float(td.get_attribute("data-value"))
        for td in sel.find_elements("css selector", "td[data-value]")
    ]
    api = get_json(f"{server}/v1/forecasts/latest/point?lat={lat}&lon={lon}&method=bilinear")
    assert shown == api["values"]
    cells = [
        (
            int(li.get_attribute("data-row")),
            int(li.get_attribute("data-col")),
            float(li.get_attribute("data-weight")),
        )
        for li in sel.find_elements("css selector", ".cells li")
    ]
    assert cells == [(c["row"], c["col"], c["weight"]) for c in api["cells"]]
    browser.find_element("id", "colour-mode").send_keys("c")  # the continuous colours
    assert canvas.get_attribute("data-mode") == "continuous"
    browser.save_screenshot(str(shots / "page_point_en.png"))


def test_status_and_verification_panels_list_real_runs(browser: Any, server: str) -> None:
    runs = get_json(f"{server}/v1/runs?limit=100")["runs"]
    assert runs
    for run in runs:
        row = browser.find_element(
            "css selector", f"#status-table tr[data-date='{run['target_date']}']"
        )
        assert row.get_attribute("data-state") == run["status"]
        assert run["model"]["version"] in row.text
    day = dt.date.fromisoformat(runs[0]["target_date"])
    query = f"from={day - dt.timedelta(days=29)}&to={day}"
    series = get_json(f"{server}/v1/verification?{query}")
    assert [d["date"] for d in series["days"]] == [day.isoformat()]  # verified in the fixture
    panel = browser.find_element("id", "verification")
    shown = [
        tr.get_attribute("data-date") for tr in panel.find_elements("css selector", "tbody tr")
    ]
    assert shown == [d["date"] for d in series["days"]]
    cells = panel.find_element("css selector", f"tr[data-date='{day}']").text
    assert f"{series['days'][0]['model_rmse']:.2f}" in cells


def test_the_verification_panel_reads_the_verification_series(browser: Any) -> None:
    """The panel against the series' JSON shape (GET /v1/verification?from=&to=)."""
    day = {"date": "2024-01-09", "run_id": 1, "model_rmse": 8.5, "cmaq_rmse": 11.25,
           "persistence_rmse": 14.0, "skill_vs_cmaq": 0.43, "skill_vs_persistence": 0.63,
           "model_peak_rmse": 30.9, "cmaq_peak_rmse": 24.4, "worse_than_cmaq": False}  # fmt: skip
    window = {"start": "2024-01-03", "end": "2024-01-09", "days": 1, "model_rmse": 8.5,
              "cmaq_rmse": 11.25, "skill_vs_cmaq": 0.43, "days_worse_than_cmaq": 0}  # fmt: skip
    series = {"from": "2023-12-11", "to": "2024-01-09", "days": [day],
              "last_7_days": window, "last_30_days": {**window, "start": "2023-12-11"},
              "days_worse_than_cmaq": []}  # fmt: skip
    saved = browser.execute_script("return window.pm25.verification")
    try:
        browser.execute_script(
            "window.pm25.verification = arguments[0]; renderVerification()", series
        )
        panel = browser.find_element("id", "verification")
        row = panel.find_element("css selector", "tr[data-date='2024-01-09']")
        assert [c.text for c in row.find_elements("css selector", "td.num")] == [
            "8.50", "11.25", "14.00", "0.43", "30.90 / 24.40"
        ]  # fmt: skip
        assert "0.43" in panel.find_element("css selector", "ul").text
    finally:
        browser.execute_script("window.pm25.verification = arguments[0]; renderVerification()", saved)  # fmt: skip


def test_the_png_map_is_for_people(server: str, shots: Path) -> None:
    from PIL import Image

    for hour in ("8", "mean"):
        url = f"{server}/v1/forecasts/latest/grid?format=png&hour={hour}"
        with urllib.request.urlopen(url, timeout=60) as r:
            data = r.read()
        image = Image.open(__import__("io").BytesIO(data))
        assert image.width >= 800
        (shots / f"map_{hour}.png").write_bytes(data)


def test_the_docs_render_offline(browser: Any, server: str, shots: Path) -> None:
    requests_made(browser)
    console_errors(browser)
    browser.get(server + "/docs")
    title = wait_for(browser, "document.querySelector('.swagger-ui .info .title')?.textContent", 20)
    assert "pm25-forecast" in title
    wait_for(browser, "document.querySelectorAll('.opblock').length > 10")
    urls = requests_made(browser)
    assert urls and all(u.startswith(server) or u.startswith("data:") for u in urls), urls
    assert console_errors(browser) == []
    browser.save_screenshot(str(shots / "docs.png"))
