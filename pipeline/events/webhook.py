"""`--events http://HOST/PATH`: each event POSTed as JSON, retried with exponential backoff.

Standard library only (urllib). A receiver that is slow, down or answering 5xx
holds up only this sink's thread: events wait in its bounded queue (the oldest
dropped and counted when it is full), each POST has a timeout, and a failed one
is retried after `backoff_s`, doubling up to `backoff_max_s`, `retries` times
before the event counts as failed. 4xx answers other than 408/429 are not
retried: the receiver refused the event, sending it again cannot help. The
receiver may see an event twice (a timeout after it had accepted it); the
event's `id` lets it drop the repeat.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from dataclasses import dataclass

from pipeline.contracts import Event
from pipeline.events.base import DEFAULT_QUEUE, ThreadedEventSink
from pipeline.sources.uri import redact, split_userinfo

log = logging.getLogger("trident.events")


@dataclass(frozen=True)
class WebhookOptions:
    timeout_s: float = 5.0  # per POST; a receiver slower than this is a failed attempt
    retries: int = 4  # attempts after the first one, each after a longer backoff
    backoff_s: float = 0.5
    backoff_max_s: float = 10.0


class WebhookEventSink(ThreadedEventSink):
    def __init__(self, url: str, options: WebhookOptions = WebhookOptions(), queue_size: int = DEFAULT_QUEUE):
        super().__init__(f"webhook:{redact(url)}", queue_size)
        self.url, self.options = url, options
        self.attempts = 0
        self.retried = 0
        self._headers = {"Content-Type": "application/json", "User-Agent": "trident-events/1"}
        head, userinfo, rest = split_userinfo(url)
        if userinfo is not None:  # urllib does not send URL credentials by itself: basic auth header
            import base64
            from urllib.parse import unquote

            self.url = head + rest
            self._headers["Authorization"] = "Basic " + base64.b64encode(unquote(userinfo).encode()).decode()

    def deliver(self, event: Event) -> None:
        body = event.to_json().encode()
        backoff, last = self.options.backoff_s, ""
        for attempt in range(self.options.retries + 1):
            if attempt:
                self.retried += 1
                if self.stop.wait(backoff):  # closing and out of time: give up on this one
                    raise RuntimeError(f"shutting down after {attempt} attempt(s); last: {last}")
                backoff = min(backoff * 2, self.options.backoff_max_s)
            self.attempts += 1
            try:
                request = urllib.request.Request(self.url, data=body, headers=self._headers, method="POST")
                with urllib.request.urlopen(request, timeout=self.options.timeout_s) as response:
                    response.read()
                self.sent += 1
                return
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
                if 400 <= exc.code < 500 and exc.code not in (408, 429):
                    raise RuntimeError(f"the receiver refused it ({last}); not retried") from None
            except (OSError, ValueError) as exc:  # refused, timed out, reset, DNS
                last = redact(str(getattr(exc, "reason", exc)))
        raise RuntimeError(f"gave up after {self.options.retries + 1} attempts; last: {last}")

    def stats(self) -> dict[str, int]:
        return {**super().stats(), "retries": self.retried}
