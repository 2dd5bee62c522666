"""The plugin process: `python -m axd.plugins.host`, one per running plugin.

It waits for `init` (the daemon sends it only after placing this process in the plugin's
cgroup), imports the plugin, calls `start()`, and says `ready` with what it exports. A reader
thread takes frames off the channel; calls and events run one at a time on the main thread.
When the channel closes (the daemon stopped or died) the process exits: no orphans.
Stdlib and the SDK only, so a plugin starts in tens of milliseconds.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import itertools
import logging
import os
import queue
import signal
import socket
import sys
import threading
import time
import traceback
from typing import Any

from axd.plugins.protocol import ProtocolError, SyncChannel
from axd.sdk._params import InvalidParams, MethodSpec, jsonable
from axd.sdk._plugin import DaemonClient, DaemonError, Plugin, exported

PR_SET_PDEATHSIG = 1
PR_SET_PTRACER = 0x59616D61


class ChannelLogHandler(logging.Handler):
    def __init__(self, channel: SyncChannel) -> None:
        super().__init__()
        self.channel = channel

    def emit(self, record: logging.LogRecord) -> None:
        try:
            params = {
                "level": record.levelname.lower(),
                "msg": record.getMessage(),
                "logger": record.name,
                "ts": record.created,
            }
            if record.exc_info:
                params["exc"] = "".join(traceback.format_exception(*record.exc_info))
            self.channel.send({"jsonrpc": "2.0", "method": "log", "params": params})
        except Exception:
            pass


class Host:
    def __init__(self, channel: SyncChannel) -> None:
        self.channel = channel
        self.plugin: Plugin | None = None
        self.methods: dict[str, Any] = {}
        self.specs: dict[str, MethodSpec] = {}
        self.handlers: dict[str, list[Any]] = {}
        self.work: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._ids = itertools.count(1)
        self._waiting: dict[int, tuple[threading.Event, list[Any]]] = {}
        self._lock = threading.Lock()
        self.folder = ""
        self.debugger: Any = None
        self.dap: dict[str, Any] | None = None
        self.serve_frame: Any = None

    # -- plugin -> daemon requests -------------------------------------------------------

    def ask_daemon(self, name: str, params: dict[str, Any], timeout: float) -> Any:
        request_id = next(self._ids)
        done = threading.Event()
        slot: list[Any] = []
        with self._lock:
            self._waiting[request_id] = (done, slot)
        self.channel.send(
            {"jsonrpc": "2.0", "id": f"p{request_id}", "method": name, "params": params}
        )
        if not done.wait(timeout):
            with self._lock:
                self._waiting.pop(request_id, None)
            raise DaemonError("timeout", f"the daemon did not answer {name} in {timeout}s")
        reply = slot[0]
        if "error" in reply:
            raise DaemonError(reply["error"].get("code", "error"), reply["error"]["message"])
        return reply.get("result")

    # -- reader thread ---------------------------------------------------------------------

    def read_forever(self) -> None:
        try:
            while True:
                message = self.channel.recv()
                if message is None:
                    break
                msg_id = message.get("id")
                if isinstance(msg_id, str) and msg_id.startswith("p") and "method" not in message:
                    with self._lock:
                        waiter = self._waiting.pop(int(msg_id[1:]), None)
                    if waiter is not None:
                        waiter[1].append(message)
                        waiter[0].set()
                elif message.get("method") == "ping":
                    self.reply(message, {"pong": time.time()})
                elif str(message.get("method", "")).startswith(("debug.", "profile.")):
                    self.debug_control(message)
                else:
                    self.work.put(message)
        except (OSError, ProtocolError):
            pass
        self.work.put(None)  # channel closed: the main loop stops the plugin and exits

    # -- debugging (reader thread) ----------------------------------------------------------

    def debug_control(self, message: dict[str, Any]) -> None:
        """Debug messages are handled off the main thread: it may be paused at a line."""
        from axd.plugins.debugger import DebugError, PluginDebugger

        method = message["method"]
        params = message.get("params") or {}
        dbg = self.debugger
        try:
            if method == "profile.sample":
                self._profile(message, params)
            elif method == "debug.attach":
                if dbg is None:
                    dbg = self.debugger = PluginDebugger(self.folder, self.emit)
                self.work.put({"method": "debug.arm"})
                self.reply(message, {"attached": True})
            elif dbg is None:
                raise DebugError("no debug session is attached")
            elif method == "debug.break":
                self.reply(
                    message,
                    dbg.add_break(
                        str(params.get("file", "")),
                        int(params.get("line", 0)),
                        params.get("cond") or None,
                    ),
                )
            elif method == "debug.clear":
                line = params.get("line")
                self.reply(
                    message,
                    {
                        "cleared": dbg.remove_breaks(
                            params.get("file"), int(line) if line is not None else None
                        )
                    },
                )
            elif method == "debug.breakpoints":
                self.reply(message, dbg.breakpoints())
            elif method == "debug.cmd":
                if dbg.paused_frame is None:
                    raise DebugError(
                        "the plugin is running, not paused; set a breakpoint and call the plugin"
                    )
                dbg.commands.put(
                    (
                        str(params.get("command")),
                        str(params.get("arg", "")),
                        lambda result, error, m=message: self._answer(m, result, error),
                    )
                )
            elif method == "debug.detach":
                dbg.remove_breaks(None, None)
                dbg.attached = False
                if dbg.paused_frame is not None:
                    dbg.commands.put(("quit", "", lambda *_: None))
                self.work.put({"method": "debug.disarm"})
                self.reply(message, {"detached": True})
            elif method == "debug.dap":
                self.reply(message, self.start_dap(int(params["port"])))
            else:
                raise DebugError(f"unknown debug message {method}")
        except DebugError as exc:
            self.fail(message, "debug_error", str(exc))
        except Exception as exc:
            self.fail(
                message, "debug_error", f"{type(exc).__name__}: {exc}", traceback.format_exc()
            )

    def _profile(self, message: dict[str, Any], params: dict[str, Any]) -> None:
        """Sample the main thread (where plugin code runs) from a thread of our own."""
        from axd.perf import stacks

        main = threading.main_thread().ident

        def run() -> None:
            collected = stacks.sample(
                float(params.get("seconds", 5)),
                float(params.get("rate", 100)),
                {main} if main else None,
            )
            self.reply(message, {"collapsed": stacks.collapsed(collected)})

        threading.Thread(target=run, name="axd-profile", daemon=True).start()

    def _answer(self, message: dict[str, Any], result: Any, error: str | None) -> None:
        if error is None:
            self.reply(message, result)
        else:
            self.fail(message, "debug_error", error)

    def emit(self, method: str, params: dict[str, Any]) -> None:
        self.channel.send({"jsonrpc": "2.0", "method": method, "params": params})

    def start_dap(self, port: int) -> dict[str, Any]:
        """Connect this process's debugger out to the daemon's relay on `port`.

        Nothing listens here: debugpy's own adapter would open a loopback port any local
        user could attach to. pydevd speaks DAP itself; the daemon pairs it with the editor.
        """
        from axd.plugins.debugger import DebugError

        if self.dap is not None:
            raise DebugError("this process's debugger is already connected; open a new session")
        # Its warning about frozen stdlib modules concerns breakpoints in the stdlib, not
        # in a plugin: kept out of the plugin's log, where it would read as a problem.
        os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
        import debugpy

        debugpy.configure(subProcess=False)  # the plugin's own child processes stay as they are
        from debugpy.server import api

        def connect(address: tuple[str, int], settrace_kwargs: dict[str, Any]) -> None:
            # What debugpy.listen() does once its adapter is up: connect without waiting
            # for the client's configurationDone (debugpy.connect() would block until then).
            api._settrace(
                host=address[0],
                port=address[1],
                wait_for_ready_to_run=False,
                block_until_connected=True,
                **settrace_kwargs,
            )

        api._starts_debugging(connect)(("127.0.0.1", port))
        self.dap = {"port": port}
        return self.dap

    # -- main thread -----------------------------------------------------------------------

    def reply(self, message: dict[str, Any], result: Any) -> None:
        if "id" in message:
            self.channel.send({"jsonrpc": "2.0", "id": message["id"], "result": result})

    def fail(
        self, message: dict[str, Any], code: str, text: str, tb: str = "", **data: Any
    ) -> None:
        if "id" in message:
            self.channel.send(
                {
                    "jsonrpc": "2.0",
                    "id": message["id"],
                    "error": {"code": code, "message": text, "data": {"traceback": tb, **data}},
                }
            )

    def serve(self) -> int:
        self.serve_frame = sys._getframe()
        while True:
            message = self.work.get()
            if message is None:
                self._stop_plugin()
                return 0
            method = message.get("method")
            params = message.get("params") or {}
            if method == "shutdown":
                self._stop_plugin()
                self.reply(message, {"stopped": True})
                return 0
            try:
                result = self._dispatch(method, params)
            except _NoSuchMethod as exc:
                self.fail(message, "no_such_method", str(exc))
            except InvalidParams as exc:
                self.fail(
                    message,
                    "invalid_params",
                    f"{self._where(params)}: {exc}",
                    param=exc.param,
                    expected=exc.expected,
                    value=jsonable(exc.value),
                )
            except Exception as exc:  # the plugin's own error: one sentence to the caller,
                where = self._where(params) if method == "call" else f"{method} handler"
                logging.getLogger(f"plugin.{self._name()}").error(  # the traceback to its log
                    "%s raised %s: %s", where, type(exc).__name__, exc, exc_info=True
                )
                self.fail(
                    message,
                    "plugin_error",
                    f"{where} raised {type(exc).__name__}: {exc}",
                    traceback.format_exc(),
                    exception=type(exc).__name__,
                )
            else:
                self.reply(message, result)

    def _name(self) -> str:
        return self.plugin.name if self.plugin is not None else "plugin"

    def _where(self, params: dict[str, Any]) -> str:
        return f"{self._name()}.{params.get('method', '?')}"

    def _dispatch(self, method: str | None, params: dict[str, Any]) -> Any:
        assert self.plugin is not None
        if method == "call":
            name = params.get("method", "")
            func = self.methods.get(name)
            if func is None:
                raise _NoSuchMethod(
                    f"{self.plugin.name} has no method {name!r}; it has: "
                    + (", ".join(sorted(self.methods)) or "none")
                )
            return func(**self.specs[name].bind(params.get("params")))
        if method == "event":
            event = params.get("event", {})
            for handler in self.handlers.get(event.get("type", ""), []):
                handler(event)
            return None
        if method == "debug.arm" and self.debugger is not None:
            self.debugger.arm(self.serve_frame)
            return None
        if method == "debug.disarm" and self.debugger is not None:
            self.debugger.disarm()
            return None
        if method == "snapshot":
            return {"state": self.plugin.snapshot()}
        if method == "restore":
            self.plugin.restore(params.get("state"))
            return {"restored": True}
        raise _NoSuchMethod(f"unknown host method {method!r}")

    def _stop_plugin(self) -> None:
        if self.plugin is not None:
            try:
                self.plugin.stop()
            except Exception:
                logging.getLogger("plugin").exception("stop() failed")

    def load(self, init: dict[str, Any]) -> dict[str, Any]:
        """Import and start the plugin; return the `ready` payload or raise _StartFailed."""
        folder, entry = init["folder"], init["entry"]
        self.folder = folder
        # Never trust or write plugin bytecode: a .pyc is checked by the source's mtime
        # second and size, so a same-size save within a second would serve the old code.
        sys.dont_write_bytecode = True
        sys.pycache_prefix = os.path.join(folder, ".axd-no-pycache")
        module_name, _, class_name = entry.partition(":")
        sys.path.insert(0, folder)
        log = logging.getLogger(f"plugin.{init['name']}")
        try:
            module = importlib.import_module(module_name)
            cls = getattr(module, class_name) if class_name else _find_plugin_class(module)
            plugin: Plugin = cls()
        except Exception as exc:
            raise _StartFailed("import", exc) from None
        plugin.name = init["name"]
        plugin.version = init.get("version", "")
        plugin.config = init.get("config", {})
        plugin.data_dir = init.get("data_dir", "")
        plugin.log = log
        plugin.daemon = DaemonClient(self.ask_daemon)
        self.plugin = plugin
        try:
            self.methods, self.handlers = exported(plugin)
            self.specs = {n: MethodSpec.of(n, f) for n, f in self.methods.items()}
        except (TypeError, ValueError) as exc:
            raise _StartFailed("import", exc) from None
        try:
            plugin.start()
        except Exception as exc:
            raise _StartFailed("start", exc) from None
        return {
            "pid": os.getpid(),
            "methods": sorted(self.methods),
            "signatures": [self.specs[n].describe() for n in sorted(self.specs)],
            "events": sorted(self.handlers),
            "version": plugin.version,
        }


class _NoSuchMethod(Exception):
    pass


class _StartFailed(Exception):
    def __init__(self, stage: str, exc: BaseException) -> None:
        super().__init__(f"{type(exc).__name__}: {exc}")
        self.stage = stage
        self.tb = "".join(traceback.format_exception(exc))


def _find_plugin_class(module: Any) -> type[Plugin]:
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, Plugin) and value is not Plugin:
            return value
    raise ImportError(f"{module.__name__} defines no Plugin subclass")


def _prctl(option: int, arg: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(option, arg, 0, 0, 0)


def main() -> int:
    fd = int(os.environ.pop("AXD_PLUGIN_FD"))
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)  # the daemon died: stop too
    if os.getppid() == 1:
        return 1  # the daemon died before we got here
    _prctl(PR_SET_PTRACER, os.getppid())  # lets the daemon profile us under Yama
    channel = SyncChannel(socket.socket(fileno=fd))
    logging.basicConfig(level=logging.DEBUG, handlers=[ChannelLogHandler(channel)])
    host = Host(channel)
    init = channel.recv()
    if init is None or init.get("method") != "init":
        return 1
    try:
        ready = host.load(init.get("params", {}))
    except _StartFailed as exc:
        channel.send(
            {
                "jsonrpc": "2.0",
                "method": "failed",
                "params": {"stage": exc.stage, "error": str(exc), "traceback": exc.tb},
            }
        )
        return 1
    channel.send({"jsonrpc": "2.0", "method": "ready", "params": ready})
    threading.Thread(target=host.read_forever, name="axd-channel", daemon=True).start()
    return host.serve()


if __name__ == "__main__":
    sys.exit(main())
