"""A wasmban action in Python: POST every ban and unban to a webhook.

Options (from the action's [Init] or the jail's action line):
  url      where to POST (required); its host must be in the plugin's
           `http` grant
  format   json (default): the whole event as a JSON object;
           slack: {"text": "..."} for Slack and Mattermost incoming webhooks;
           discord: {"content": "..."} for Discord webhooks
  token    sent as "Authorization: Bearer TOKEN" when given
  lines    yes: include the log lines that led to the ban (json format)
  timeout  milliseconds to wait for the webhook (default 5000)
  name     the jail (wasmban passes it)

componentize-py looks for the classes of an exported interface's resources
in a module named after the interface: this file is `action.py`, and the
build names it as the app:

  componentize-py -d wit -w http-action componentize action -o webhook.wasm
"""
import json
from typing import List, Tuple

from componentize_py_types import Err, Ok, Result
from wit_world import exports
from wit_world.exports import action as action_api
from wit_world.imports import http, log, types

FORMATS = ("json", "slack", "discord")


def flag(value: str, option: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("yes", "true", "on", "1"):
        return True
    if lowered in ("no", "false", "off", "0"):
        return False
    raise Err(f"option `{option}` = {value!r}: expected yes or no")


class Handler(action_api.Handler):
    def __init__(self, url: str, fmt: str, token: str, lines: bool, timeout_ms: int, jail: str):
        self.url = url
        self.fmt = fmt
        self.token = token
        self.lines = lines
        self.timeout_ms = timeout_ms
        self.jail = jail

    @classmethod
    def create(cls, options: List[Tuple[str, str]]) -> "Handler":
        opts = dict(options)
        url = opts.get("url", "").strip()
        if not url.startswith(("http://", "https://")):
            raise Err("option `url` must be the webhook's http:// or https:// address, "
                      "such as url = https://hooks.example.org/wasmban")
        fmt = opts.get("format", "json").strip().lower()
        if fmt not in FORMATS:
            raise Err(f"option `format` = {fmt!r}: expected one of {', '.join(FORMATS)}")
        timeout = opts.get("timeout", "5000").strip()
        if not timeout.isdigit():
            raise Err(f"option `timeout` = {timeout!r}: expected milliseconds")
        return cls(url, fmt, opts.get("token", "").strip(), flag(opts.get("lines", "no"), "lines"),
                   int(timeout), opts.get("name", "default"))

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def check(self) -> None:
        pass

    def ban(self, tickets: List[types.Ticket]) -> List[Result[None, str]]:
        return [self.post("ban", t) for t in tickets]

    def unban(self, tickets: List[types.Ticket]) -> List[Result[None, str]]:
        return [self.post("unban", t) for t in tickets]

    def body(self, event: str, t: types.Ticket) -> str:
        verb = "banned" if event == "ban" else "unbanned"
        length = "for ever" if t.bantime < 0 else f"for {t.bantime} s"
        text = f"[{t.jail}] {verb} {t.ip}" + (f" after {t.failures} failures, {length}" if event == "ban" else "")
        if self.fmt == "slack":
            return json.dumps({"text": text})
        if self.fmt == "discord":
            return json.dumps({"content": text})
        event_json = {
            "event": event,
            "jail": t.jail,
            "ip": t.ip,
            "failures": t.failures,
            "time": t.time,
            "bantime": t.bantime,
            "ban_count": t.ban_count,
            "fields": dict(t.fields),
        }
        if self.lines:
            event_json["matches"] = list(t.matches)
        return json.dumps(event_json)

    def post(self, event: str, t: types.Ticket) -> Result[None, str]:
        headers = [("Content-Type", "application/json")]
        if self.token:
            headers.append(("Authorization", f"Bearer {self.token}"))
        request = http.Request(method="POST", url=self.url, headers=headers, body=self.body(event, t))
        try:
            response = http.send(request, self.timeout_ms)
        except Err as e:
            return Err(f"webhook {self.url}: {e.value}")
        if 200 <= response.status < 300:
            return Ok(None)
        log.log(log.Level.WARN, f"webhook {self.url} answered {response.status} to the {event} of {t.ip}")
        return Err(f"webhook {self.url} answered HTTP {response.status}: {response.body[:200]}")


class Action(exports.Action):
    pass
