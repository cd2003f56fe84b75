"""The web console in a real browser: two people chat, one drops off the network and comes back.

Ada's page is served through a TCP proxy so that the test can take her off the network the way
a lost connection does (every socket reset, new connections refused); Bo keeps sending. When
she is back, her page must show every message once, in order - resumed with ``since`` by the
console's own client, not reloaded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Locator, Page, expect

from tests.api_client import unique_phone
from tests.proxy import TcpProxy, tcp_proxy

pytestmark = pytest.mark.browser

WAIT_MS = 15_000
SETTLE_MS = 1_000
expect.set_options(timeout=WAIT_MS)


@pytest.fixture
async def proxy(base_url: str) -> AsyncIterator[TcpProxy]:
    async with tcp_proxy(base_url) as p:
        yield p


async def new_page(browser: Browser, width: int = 1100, height: int = 720) -> Page:
    context = await browser.new_context(viewport={"width": width, "height": height})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: dialog.accept())
    page.set_default_timeout(WAIT_MS)
    return page


async def sign_up(page: Page, url: str, name: str) -> int:
    await page.goto(url + "/console/")
    await page.get_by_label("Name").fill(name)
    await page.get_by_label("Phone number").fill(unique_phone())
    await page.get_by_role("button", name="Sign up").click()
    await expect(page.locator("#connection")).to_have_text("Connected")
    me = await page.locator("#me").inner_text()
    return int(me.rsplit("user ", 1)[1].rstrip(")"))


async def create_event(page: Page, title: str, participant: int) -> None:
    await page.get_by_text("New event").click()
    await page.get_by_label("Title").fill(title)
    await page.get_by_label("Starts").fill("2031-05-01T10:00")
    await page.get_by_label("Ends").fill("2031-05-01T11:00")
    await page.get_by_label("Location").fill("Blue Bottle, Seongsu")
    await page.get_by_label("Participant user ids").fill(str(participant))
    await page.get_by_role("button", name="Create event").click()
    await expect(page.locator("#event-title-heading")).to_have_text(title)


async def open_event(page: Page, title: str) -> None:
    await page.get_by_role("button", name="Refresh").click()
    await page.locator("#event-list button", has_text=title).click()
    await expect(page.locator("#event-title-heading")).to_have_text(title)


async def send(page: Page, text: str) -> None:
    composer = page.get_by_role("textbox", name="Your message")
    await composer.fill(text)
    await composer.press("Enter")


def sent_messages(page: Page) -> Locator:
    """The texts of the messages the server has (pending local copies excluded)."""
    return page.locator("#chat-log .message:not(.pending) .text")


async def test_a_user_who_drops_off_sees_every_message_once_in_order_when_back(
    browser: Browser, base_url: str, proxy: TcpProxy, screenshot_dir: Path
) -> None:
    ada_page = await new_page(browser)
    bo_page = await new_page(browser, width=390, height=800)  # a phone
    ada_url = proxy.url(scheme="http", path="")
    await sign_up(ada_page, ada_url, "Ada")
    bo = await sign_up(bo_page, base_url, "Bo")
    await create_event(ada_page, "Coffee at 10", bo)
    await open_event(bo_page, "Coffee at 10")
    await expect(ada_page.locator("#presence")).to_have_text("Here now: Bo")

    await send(ada_page, "Hi Bo! See you at 10?")
    await send(bo_page, "Yes, see you there")
    expected = ["Hi Bo! See you at 10?", "Yes, see you there"]
    await expect(sent_messages(ada_page)).to_have_text(expected)
    await expect(sent_messages(bo_page)).to_have_text(expected)

    proxy.go_offline()
    await expect(ada_page.locator("#connection")).to_have_attribute("data-state", "disconnected")
    await expect(bo_page.locator("#presence")).to_have_text("Nobody else is here now.")
    away = [f"while you were away {i}" for i in range(5)]
    for text in away:
        await send(bo_page, text)
    await send(ada_page, "typed while offline")
    await expect(ada_page.locator(".message.pending .state")).to_have_text(
        "waiting for the connection…"
    )
    await expect(sent_messages(bo_page)).to_have_text(expected + away)

    proxy.go_online()
    await expect(ada_page.locator("#connection")).to_have_text("Connected")
    final = [*expected, *away, "typed while offline"]
    await expect(sent_messages(ada_page)).to_have_text(final)
    await expect(sent_messages(bo_page)).to_have_text(final)
    await expect(ada_page.locator(".message.pending")).to_have_count(0)
    await send(bo_page, "welcome back")
    await expect(sent_messages(ada_page)).to_have_text([*final, "welcome back"])
    await ada_page.wait_for_timeout(SETTLE_MS)  # a late duplicate would show up here
    await expect(sent_messages(ada_page)).to_have_text([*final, "welcome back"])
    assert proxy.connections >= 2  # the page really reconnected

    ada_shot = screenshot_dir / "console-desktop.png"
    bo_shot = screenshot_dir / "console-phone.png"
    await ada_page.screenshot(path=str(ada_shot))
    await bo_page.screenshot(path=str(bo_shot))
    for shot in (ada_shot, bo_shot):
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"console screenshots: {ada_shot} {bo_shot}")


async def test_edit_delete_react_typing_and_read_marks_reach_the_other_user(
    browser: Browser, base_url: str
) -> None:
    ada_page = await new_page(browser)
    bo_page = await new_page(browser)
    await sign_up(ada_page, base_url, "Ada")
    bo = await sign_up(bo_page, base_url, "Bo")
    await create_event(ada_page, "Lunch", bo)
    await send(ada_page, "first")
    await send(ada_page, "secnd")
    await bo_page.get_by_role("button", name="Refresh").click()
    await expect(bo_page.locator("#event-list .badge")).to_have_text("2")
    await open_event(bo_page, "Lunch")
    await expect(bo_page.locator("#event-list .badge")).to_have_count(0)  # read on open
    first_item = await bo_page.locator(".message", has_text="first").element_handle()
    await send(ada_page, "third")
    await expect(sent_messages(bo_page)).to_have_text(["first", "secnd", "third"])
    # A new message is added to the log; the ones shown stay (a screen reader hears only it).
    assert await first_item.evaluate("(element) => element.isConnected")

    await bo_page.get_by_role("textbox", name="Your message").type("hm")
    await expect(ada_page.locator("#typing")).to_have_text("Bo is typing…")

    mine = ada_page.locator(".message", has_text="secnd")
    await mine.get_by_role("button", name="Edit").click()
    editor = ada_page.get_by_role("textbox", name="Edit message")
    await editor.fill("second")
    await ada_page.get_by_role("button", name="Save").click()
    await expect(sent_messages(bo_page)).to_have_text(["first", "second", "third"])
    await expect(bo_page.locator(".message", has_text="second")).to_contain_text("(edited)")

    await (
        bo_page.locator(".message", has_text="first").get_by_role("button", name="React 👍").click()
    )
    await expect(
        ada_page.locator(".message", has_text="first").get_by_role("button", name="React 👍 (1)")
    ).to_be_visible()

    await (
        ada_page.locator(".message", has_text="first").get_by_role("button", name="Delete").click()
    )
    await expect(sent_messages(bo_page)).to_have_text(
        ["This message was deleted.", "second", "third"]
    )


async def test_event_status_and_participants_are_managed_from_the_console(
    browser: Browser, base_url: str
) -> None:
    ada_page = await new_page(browser)
    bo_page = await new_page(browser)
    cy_page = await new_page(browser)
    await sign_up(ada_page, base_url, "Ada")
    bo = await sign_up(bo_page, base_url, "Bo")
    cy = await sign_up(cy_page, base_url, "Cy")
    await create_event(ada_page, "Board games", bo)
    await ada_page.get_by_text("Participants and status").click()
    await ada_page.get_by_label("Add participant (user id)").fill(str(cy))
    await ada_page.get_by_role("button", name="Add", exact=True).click()
    await expect(ada_page.locator("#participants li")).to_have_count(3)

    for page in (bo_page, cy_page):
        await open_event(page, "Board games")
        await page.get_by_text("Participants and status").click()
        await page.get_by_role("button", name="Confirm my participation").click()
        await expect(page.locator("#confirm")).to_be_hidden()
    await ada_page.get_by_role("button", name="Refresh").click()
    await ada_page.locator("#event-list button", has_text="Board games").click()
    await ada_page.get_by_label("Change status to").select_option("CONFIRMED")
    await ada_page.get_by_role("button", name="Apply").click()
    await expect(ada_page.locator("#event-meta")).to_contain_text("CONFIRMED")


async def test_every_control_has_a_label_and_a_phone_screen_needs_no_sideways_scrolling(
    browser: Browser, base_url: str
) -> None:
    page = await new_page(browser, width=360, height=740)
    await page.goto(base_url + "/console/")
    unlabeled = await page.evaluate(
        """() => [...document.querySelectorAll('input, textarea, select')]
                 .filter((el) => el.labels.length === 0).map((el) => el.id)"""
    )
    assert unlabeled == []
    bo = await sign_up(page, base_url, "Phone user")
    await create_event(page, "Walk", bo)
    await send(page, "on my phone")
    await expect(sent_messages(page)).to_have_text(["on my phone"])
    overflow = await page.evaluate(
        "() => document.scrollingElement.scrollWidth - window.innerWidth"
    )
    assert overflow <= 0
    await page.keyboard.press("Shift+Tab")  # from the composer back to the log controls
    focused = await page.evaluate("() => document.activeElement?.tagName")
    assert focused == "BUTTON"


async def test_the_javascript_timeline_orders_by_message_id_and_keeps_each_message_once(
    browser: Browser, base_url: str
) -> None:
    page = await new_page(browser)
    await page.goto(base_url + "/console/")
    texts = await page.evaluate(
        """async () => {
            const { Timeline } = await import('/console/chat-client.js');
            const ids = [
              '1b3e0c80-f5e1-11ef-8000-010000000001',  // earliest
              '0a3e0c80-f5e2-11ef-8000-010000000001',  // later: the high bits decide
              '1b3e0c80-f5e1-11ef-8000-010000000002',  // same tick, next node
              '1b3e0c80-f5e1-11ef-8000-800000000000',  // same tick: 0x80 is -128, first
            ];
            const msg = (id, text) => ({event_id: 7, message_id: id, text});
            const timeline = new Timeline(7);
            timeline.add([msg(ids[1], 'third'), msg(ids[0], 'first')]);
            timeline.add([msg(ids[2], 'second'), msg(ids[0], 'first again')]);
            timeline.add([msg(ids[0], 'other event'), {...msg(ids[1], 'x'), event_id: 8}]);
            timeline.add([msg(ids[3], 'signed first')]);
            return timeline.messages.map((m) => m.text);
        }"""
    )
    assert texts == ["signed first", "other event", "second", "third"]


async def test_the_javascript_client_knows_every_server_frame_of_the_asyncapi_document(
    browser: Browser, base_url: str
) -> None:
    page = await new_page(browser)
    await page.goto(base_url + "/console/")
    known = await page.evaluate(
        "async () => [...(await import('/console/chat-client.js')).SERVER_FRAME_TYPES]"
    )
    document = await page.evaluate("async () => (await fetch('/v1/asyncapi.json')).json()")
    documented = {
        message["name"]
        for key, message in document["components"]["messages"].items()
        if key.startswith("server_")
    }
    assert set(known) == documented


async def test_the_javascript_client_refreshes_its_token_and_keeps_its_subscription(
    browser: Browser, base_url: str
) -> None:
    page = await new_page(browser)
    await sign_up(page, base_url, "Refresher")
    result = await page.evaluate(
        """async () => {
            const { ChatClient } = await import('/console/chat-client.js');
            const token = sessionStorage.getItem('timingle-chat-token');
            const client = new ChatClient(`ws://${location.host}/v1/ws`, { token });
            let welcomes = 0;
            const drops = [];
            client.addEventListener('connected', () => welcomes++);
            client.addEventListener('disconnected', (e) => drops.push(e.detail.code));
            const open = () => client.state === 'open' ? Promise.resolve() : new Promise(
                (resolve) => client.addEventListener('connected', resolve, { once: true }));
            client.start();
            await open();
            const event = await (await fetch('/v1/events', {
                method: 'POST',
                headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
                body: JSON.stringify({ title: 'Refresh', start_time: '2031-01-01T10:00:00Z',
                                       end_time: '2031-01-01T11:00:00Z' }),
            })).json();
            await client.subscribe(event.id);
            // A server with in-session refresh answers `refreshed`; one without answers
            // `unknown_type`, and the client reconnects (closing with 1000) with the token.
            await client.refreshToken(token);
            await open();
            const ack = await client.send(event.id, 'after the refresh');
            const page = await client.history(event.id, { limit: 5 });
            client.close();
            return { welcomes, drops, texts: page.messages.map((m) => m.text), acked: ack.type };
        }"""
    )
    assert result["drops"] in ([], [1000])
    assert result["welcomes"] == 1 + len(result["drops"])
    assert result["acked"] == "ack"
    assert result["texts"] == ["after the refresh"]
