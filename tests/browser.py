"""Debian's Chromium driven by playwright, for tests of the Dagster UI.

``chromium_page(profile)`` launches ``/usr/bin/chromium`` headless (no browser download: playwright gets the
executable path) with a fresh profile folder and the flags a root user on a closed network needs, and yields one
page. ``DagsterUI`` holds the steps a user takes in the UI, each through roles and visible text; on a fresh
instance (GraphQL ``shouldShowNux``) the first page shows Dagster's "Join the Dagster community" dialog, which it
skips before anything else.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from playwright.sync_api import Locator, Page, expect, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--no-sandbox",  # root in a container: Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
VIEWPORT = {"width": 1600, "height": 1000}
ACTION_TIMEOUT_MS = 60_000  # a loaded machine renders the UI slowly; a bound, not a timing assertion
POLL_MS = 5_000
RUN_STATUSES = ("Success", "Failure", "Canceled")
"""The run page's status tag once a run has ended."""
_RUN_URL = re.compile(r"/runs/([0-9a-f-]{36})(?:[/?#]|$)")


@contextlib.contextmanager
def chromium_page(profile: Path) -> Iterator[Page]:
    """A page of a headless Chromium with a fresh profile in ``profile``; the browser is closed on exit."""
    if not CHROMIUM.is_file():
        raise AssertionError(f"{CHROMIUM} is missing: install Debian's chromium (bash scripts/system_packages.sh)")
    profile.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=list(CHROMIUM_ARGS),
            viewport=VIEWPORT)
        try:
            context.set_default_timeout(ACTION_TIMEOUT_MS)
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


class DagsterUI:
    """The Dagster webserver at ``base_url`` in one browser page, used as a person uses it: by clicking."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url.rstrip("/")

    def open_asset_group(self, location: str, group: str, *, community_dialog: bool) -> None:
        """The group's page, its lineage tab: the asset graph of one suite. ``community_dialog``: the instance is
        fresh, so the page opens under Dagster's newsletter dialog, which is skipped (it would cover what follows)."""
        page = self.page
        page.goto(f"{self.base_url}/locations/{location}/asset-groups/{group}")
        if community_dialog:
            dialog = page.get_by_role("dialog").filter(has_text="Join the Dagster community")
            dialog.get_by_role("button", name="Skip").click()
            expect(dialog).to_be_hidden(timeout=ACTION_TIMEOUT_MS)
        expect(page.get_by_role("button", name="Materialize all…")).to_be_visible(timeout=ACTION_TIMEOUT_MS)

    def asset_node(self, name: str) -> Locator:
        """The node of the graph labelled with an asset's name (the last part of its key)."""
        return self.page.get_by_text(name, exact=True)

    def materialize_partition(self, partition: str) -> str:
        """Materialize all… → pick ``partition`` in the launch dialog → Launch 1 run → the toast's View link;
        returns the run id of the run page it opens (fails if no run was launched)."""
        page = self.page
        page.get_by_role("button", name="Materialize all…").click()
        dialog = page.locator(".dagster-dialog").filter(has_text="Partition selection")
        expect(dialog).to_be_visible(timeout=ACTION_TIMEOUT_MS)
        dialog.get_by_text("Select a partition or create one").click()
        item = page.get_by_role("menuitem").filter(has=page.get_by_text(partition, exact=True))
        item.click()
        expect(item.get_by_role("checkbox")).to_be_checked(timeout=ACTION_TIMEOUT_MS)
        page.keyboard.press("Escape")  # closes the partition list, not the dialog
        expect(dialog.get_by_text("1 partition", exact=True)).to_be_visible(timeout=ACTION_TIMEOUT_MS)
        dialog.get_by_role("button", name="Launch 1 run").click()
        toast = page.get_by_text(re.compile(r"^Launched run [0-9a-f]{8}$"))
        expect(toast, "no run launched: Dagster's toast never said 'Launched run'").to_be_visible(
            timeout=ACTION_TIMEOUT_MS)
        page.get_by_role("link", name="View", exact=True).click()  # the toast's link to the run
        page.wait_for_url(_RUN_URL)
        match = _RUN_URL.search(page.url)
        assert match is not None, page.url
        return match.group(1)

    def wait_for_run_end(self, timeout_s: float, on_poll: Callable[[], None] = lambda: None) -> str:
        """Watch the open run page until its status tag says the run ended (calling ``on_poll`` between looks);
        returns that status. Fails after ``timeout_s``."""
        status = self.page.get_by_text(re.compile(f"^({'|'.join(RUN_STATUSES)})$")).first
        deadline = time.monotonic() + timeout_s
        while True:
            on_poll()
            try:
                expect(status).to_be_visible(timeout=POLL_MS)
            except AssertionError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"the run page showed no end status ({', '.join(RUN_STATUSES)}) within "
                                         f"{timeout_s:.0f} s") from None
                continue
            return status.inner_text().strip()
