"""Following a workspace's files: watcher batches become index updates, and `--fresh`
searches wait for a cookie to come back through the same path.

Batches arriving while one is applied accumulate in `ws.pending`; one flush task drains
them in order, so a burst of saves costs a few transactions, not one per save. A batch
carries the watcher's sequence number; `wait_fresh` writes a cookie file and waits until
the batch that saw it has been applied (watchman's cookie trick), which is the only way to
know that every change made before the search is in the index.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable

from axd import open_files
from axd.codeintel import walker
from axd.codeintel.ignore import COOKIE_PREFIX, IgnoreRules
from axd.codeintel.indexer import Indexer, disk_full
from axd.codeintel.watcher import Watcher
from axd.codeintel.workers import Workers
from axd.codeintel.workspaces import Workspace
from axd.config.live import LiveConfig
from axd.errors import AxdError
from axd.events import EventBus
from axd.watch_mode import WatchMode

log = logging.getLogger("axd.codeintel")

FRESH_TIMEOUT = 5.0
RETRY_S = 1.0  # a batch that met a full disk or the open-files limit is tried again after
MAX_EVENT_PATHS = 1000


class ChangeFollower:
    def __init__(
        self, indexer: Indexer, workers: Workers, bus: EventBus, config: LiveConfig
    ) -> None:
        self.indexer = indexer
        self.workers = workers
        self.bus = bus
        self.config = config
        self._cookie_seq = 0
        self.on_applied: Callable[[], None] = lambda: None  # after each applied batch

    def watch(self, ws: Workspace) -> None:
        """Start watching `ws` (after its first index), or add the folders found since."""
        if not self.config.flag("codeintel.watch"):
            return
        if ws.watcher is None:
            debounce = self.config.number("codeintel.debounce")
            mode = WatchMode(
                "workspace",
                self.bus,
                lambda: self.config.number("daemon.watch_poll_interval"),
                workspace=ws.root,
            )
            ws.watcher = Watcher(
                ws.root, ws.dirs, lambda c, k, s: self._on_batch(ws, c, k, s), debounce, mode
            )
            ws.watcher.start()
            ws.watching.set()
        else:
            ws.watcher.add_dirs(ws.dirs)

    async def _on_batch(
        self, ws: Workspace, changed: set[str], cookies: set[str], seq: int
    ) -> None:
        now = time.monotonic()
        for path in changed:
            ws.pending.setdefault(path, now)
        ws.received_seq = seq
        for cookie in cookies:
            future = ws.cookies.pop(cookie, None)
            if future is not None and not future.done():
                future.set_result(seq)
        if not ws.flushing:
            ws.flushing = True
            self.workers.spawn(self._flush(ws))

    async def _flush(self, ws: Workspace) -> None:
        try:
            while ws.pending or ws.applied_seq < ws.received_seq:
                seq = ws.received_seq
                batch, ws.pending = ws.pending, {}
                try:
                    await self._apply(ws, set(batch))
                    ws.retrying = None
                except Exception as exc:  # one bad batch must not stop the watcher
                    if not _transient(exc):
                        log.exception("indexing changes failed", extra={"root": ws.root})
                        ws.errors.append(f"{type(exc).__name__}: {exc}")
                    else:
                        # Out of descriptors or disk space: the changes are kept and tried
                        # again a little later, not dropped (they would stay unindexed);
                        # fresh searches meanwhile say so. Logged once per episode.
                        if ws.retrying is None:
                            log.warning(
                                "indexing changes failed; trying again",
                                extra={"root": ws.root, "error": str(exc), "files": len(batch)},
                            )
                            ws.errors.append(f"{exc}: the changes are kept and tried again")
                        ws.retrying = str(exc)
                        for path, seen in batch.items():
                            ws.pending.setdefault(path, seen)
                async with ws.applied:
                    ws.applied_seq = max(ws.applied_seq, seq)
                    ws.applied.notify_all()
                if ws.retrying:
                    await asyncio.sleep(RETRY_S)
        finally:
            ws.flushing = False

    async def _apply(self, ws: Workspace, paths: set[str]) -> None:
        if not os.path.isdir(ws.root):
            async with ws.lock:
                if not ws.removed:
                    await self.indexer.mark_missing(ws)
            return
        if any(p.rsplit("/", 1)[-1] == ".gitignore" for p in paths) or ws.needs_rescan:
            ws.needs_rescan = False
            await self.indexer.reconcile(ws, reason="ignore rules changed")
            return
        to_index, to_delete = await self._sort_out(ws, paths)
        if not to_index and not to_delete:
            return
        async with ws.lock:
            if ws.removed:  # removed while this batch waited: its changes go with it
                return
            started = time.perf_counter()
            summary = await self.indexer.index(ws, to_index, to_delete)
            took = round((time.perf_counter() - started) * 1000, 1)
        self.bus.publish(
            "file.changed",
            workspace=ws.root,
            paths=to_index[:MAX_EVENT_PATHS],
            deleted=to_delete[:MAX_EVENT_PATHS],
            truncated=len(to_index) > MAX_EVENT_PATHS or len(to_delete) > MAX_EVENT_PATHS,
        )
        self.bus.publish(
            "index.updated", workspace=ws.root, reason="watch", took_ms=took, **summary
        )
        self.on_applied()

    async def _sort_out(self, ws: Workspace, paths: set[str]) -> tuple[list[str], list[str]]:
        """(files to index, files to drop) for the paths a batch reported."""
        to_index: set[str] = set()
        to_delete: set[str] = set()
        new_dirs: list[str] = []
        for rel in sorted(paths):
            full = os.path.join(ws.root, rel)
            if os.path.isdir(full) and not os.path.islink(full):
                if rel in ("", ".") or not ws.rules.ignored(rel, is_dir=True):
                    # A new folder, or one re-synced after a watcher restart: walk it and
                    # index what differs from what we know.
                    sub = await asyncio.to_thread(_walk_subdir, ws.root, rel, ws.rules)
                    new_dirs.extend(sub.dirs)
                    to_index.update(
                        p for p, st in sub.files.items() if ws.stale(p, st.size, st.mtime_ns)
                    )
                    prefix = "" if rel in ("", ".") else rel + "/"
                    to_delete.update(
                        p for p in ws.known if p.startswith(prefix) and p not in sub.files
                    )
            elif os.path.isfile(full) and not os.path.islink(full):
                if not ws.rules.ignored(rel, is_dir=False):
                    to_index.add(rel)
            else:
                if rel in ws.known:
                    to_delete.add(rel)
                prefix = rel + "/"
                to_delete.update(p for p in ws.known if p.startswith(prefix))
                if ws.watcher:
                    ws.watcher.remove_dirs(rel)
        if new_dirs:
            ws.dirs = sorted(set(ws.dirs) | set(new_dirs))
            if ws.watcher:
                ws.watcher.add_dirs(new_dirs)
        return sorted(to_index), sorted(to_delete)

    async def wait_fresh(self, ws: Workspace) -> str | None:
        """Wait until every change made before this call is indexed (cookie round trip).
        Returns a warning when freshness cannot be guaranteed."""
        if ws.watcher is None and self.config.flag("codeintel.watch") and ws.state != "missing":
            # Being indexed or caught up (a daemon just started): its walk sees what
            # changed before this call, and the watcher starts when the walk is done.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ws.watching.wait(), FRESH_TIMEOUT)
        if ws.watcher is None or not ws.watcher.running:
            return "not watching this workspace; results reflect the last full index"
        self._cookie_seq += 1
        name = f"{COOKIE_PREFIX}{os.getpid()}-{self._cookie_seq}"
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        ws.cookies[name] = future
        path = os.path.join(ws.root, name)
        try:
            with open(path, "w"):
                pass
        except OSError as exc:
            ws.cookies.pop(name, None)
            return f"cannot write a cookie file in {ws.root} ({exc.strerror})"
        timeout = FRESH_TIMEOUT
        if ws.watcher.mode.polling:  # a cookie is confirmed two poll intervals after it is seen
            timeout = max(timeout, 3 * self.config.number("daemon.watch_poll_interval") + 2)
        try:
            seq = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            ws.cookies.pop(name, None)
            return "the watcher did not confirm the cookie in time; results may be stale"
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)
        async with ws.applied:
            await asyncio.wait_for(ws.applied.wait_for(lambda: ws.applied_seq >= seq), 60)
        if ws.retrying:
            return (
                f"{len(ws.pending)} change(s) are not indexed yet ({ws.retrying}); "
                f"they are tried again every {RETRY_S:g}s"
            )
        return None


def _transient(exc: BaseException) -> bool:
    """A failure that passes (descriptors or space come back), not one of the batch."""
    if isinstance(exc, AxdError) and exc.code in ("too_many_open_files", "disk_full"):
        return True
    return open_files.exhausted(exc) or disk_full(exc)


def _walk_subdir(root: str, rel: str, rules: IgnoreRules) -> walker.WalkResult:
    if rel in ("", "."):
        return walker.walk(root, rules)
    result = walker.walk(os.path.join(root, rel), _Prefixed(rules, rel))
    result.files = {f"{rel}/{p}": st for p, st in result.files.items()}
    result.dirs = [f"{rel}/{d}" if d else rel for d in result.dirs]
    return result


class _Prefixed(IgnoreRules):
    """Rules of the workspace, asked about paths relative to a sub-folder."""

    def __init__(self, rules: IgnoreRules, prefix: str) -> None:
        self._rules = rules
        self._prefix = prefix

    def ignored(self, relpath: str, is_dir: bool) -> bool:
        return self._rules.ignored(f"{self._prefix}/{relpath}", is_dir)
