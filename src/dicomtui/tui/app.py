"""The console app: connects through a Backend, polls it from a thread, renders batches.

Nothing here waits on the engine or the network on the UI thread: every Backend call
runs in a thread worker and comes back as one message (see messages.py).
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime
from functools import partial
from pathlib import Path

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.screen import ModalScreen, Screen

from dicomtui.backend.base import BackendError
from dicomtui.models import Event
from dicomtui.tui import messages as msg
from dicomtui.tui.dialogs import Confirm, HelpScreen
from dicomtui.tui.preferences import chosen_theme, save_theme
from dicomtui.tui.quit_dialog import CANCEL, LEAVE, STOP, QuitChoice
from dicomtui.tui.rates import RateHistory
from dicomtui.tui.screens.access import AccessScreen
from dicomtui.tui.screens.anonymization import AnonymizationScreen
from dicomtui.tui.screens.facilities import FacilitiesScreen
from dicomtui.tui.screens.log import LogScreen, fetch_tail
from dicomtui.tui.screens.settings import SettingsScreen
from dicomtui.tui.screens.status import StatusScreen
from dicomtui.tui.screens.storage import StorageScreen
from dicomtui.tui.screens.studies import StudiesScreen
from dicomtui.tui.screens.uploads import UploadsScreen
from dicomtui.tui.widgets import our_bindings

Connector = Callable[[], object]
LOG_EVENTS_KEPT = 2000
APP_LOG_KINDS = ["log", "state"]  # transactions come from the log query, not events
CLOSE_WAIT = 120.0  # seconds quitting waits for a local receiver to finish and flush


def styles_dir() -> Path:
    """styles/ inside the installed package, or at the top of a source checkout."""
    packaged = Path(__file__).resolve().parent.parent / "styles"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[3] / "styles"


def _wall_clock() -> datetime:
    return datetime.now().astimezone()


class DicomTUI(App):
    """Status, Log, Studies, Facilities, Access, Storage, Uploads, Anonymization and
    Settings of one receiver, local or attached to a service."""

    TITLE = "dicomtui"
    CSS_PATH = [styles_dir() / name for name in
                ("app.tcss", "status.tcss", "log.tcss", "studies.tcss", "facilities.tcss",
                 "access.tcss", "storage.tcss", "uploads.tcss", "anonymization.tcss",
                 "settings.tcss")]
    MODES = {"status": StatusScreen, "log": LogScreen, "studies": StudiesScreen,
             "facilities": FacilitiesScreen, "access": AccessScreen,
             "storage": StorageScreen, "uploads": UploadsScreen,
             "anonymization": AnonymizationScreen, "settings": SettingsScreen}
    DEFAULT_MODE = "status"
    SCREENS_GROUP = Binding.Group("Screens", compact=True)
    BINDINGS = [
        Binding("s", "start_stop", "Start/stop", id="receiver.start_stop",
                tooltip="start the receiver, or stop it (asks first)"),
        Binding("r", "restart", "Restart", id="receiver.restart",
                tooltip="restart the receiver (applies settings that need it)"),
        Binding("question_mark", "help", "Help", key_display="?", id="help",
                tooltip="every key of this screen"),
        Binding("q", "quit", "Quit", id="quit",
                tooltip="leave the console; the receiver keeps running unless you stop "
                "it"),
        Binding("1", "show('status')", "Status", id="screen.status", group=SCREENS_GROUP,
                tooltip="state, associations, counters, rate, storage, last errors"),
        Binding("2", "show('log')", "Log", id="screen.log", group=SCREENS_GROUP,
                tooltip="the transaction log and the application log"),
        Binding("3", "show('studies')", "Studies", id="screen.studies", group=SCREENS_GROUP,
                tooltip="the study index: search, state, series; send a study to a "
                "destination"),
        Binding("4", "show('facilities')", "Facilities", id="screen.facilities",
                group=SCREENS_GROUP, tooltip="sending sites: AE title, port, listener; "
                "what their PACS enters"),
        Binding("5", "show('access')", "Access", id="screen.access", group=SCREENS_GROUP,
                tooltip="who may associate: policy, allowed callers, refusals"),
        Binding("6", "show('storage')", "Storage", id="screen.storage", group=SCREENS_GROUP,
                tooltip="space used against the quota, by facility, modality and day; "
                "cleanup, reindex"),
        Binding("7", "show('uploads')", "Uploads", id="screen.uploads", group=SCREENS_GROUP,
                tooltip="the upload queue: progress, retries; retry, cancel, upload a "
                "folder or zip"),
        Binding("8", "show('anonymization')", "Anonymization", id="screen.anonymization",
                group=SCREENS_GROUP, tooltip="the anonymization policy and subject codes; "
                "reveal (asks, logged), export"),
        Binding("9", "show('settings')", "Settings", id="screen.settings",
                group=SCREENS_GROUP, tooltip="effective settings, their source; edit them"),
        Binding("left_square_bracket", "cycle(-1)", "Previous screen", key_display="[",
                id="screen.previous", group=SCREENS_GROUP, tooltip="the screen to the left"),
        Binding("right_square_bracket", "cycle(1)", "Next screen", key_display="]",
                id="screen.next", group=SCREENS_GROUP, tooltip="the screen to the right"),
    ]

    def __init__(self, connector: Connector, *, no_start: bool = False,
                 clock: Callable[[], datetime] = _wall_clock,
                 poll_interval: float = 0.4) -> None:
        super().__init__()
        self._connector, self.no_start, self.clock = connector, no_start, clock
        self.poll_interval = poll_interval
        self.backend = None
        self.snapshot = None
        self.problem = ""
        self.unreachable = False
        self.rates = RateHistory()
        self.log_events: deque[Event] = deque(maxlen=LOG_EVENTS_KEPT)
        self.log_screen: LogScreen | None = None
        self._seq = 0
        self._quitting = self._connecting = False
        self._backend_closed = threading.Event()
        self.theme = chosen_theme(self.available_themes, self.theme)

    # -- lifecycle --------------------------------------------------------------------
    def on_mount(self) -> None:
        self.theme_changed_signal.subscribe(self, lambda theme: save_theme(theme.name))
        self._start_connect()
        loop = asyncio.get_running_loop()
        for sig, handler in ((signal.SIGTERM, self._on_signal),
                             (signal.SIGHUP, self._on_hangup)):
            try:
                loop.add_signal_handler(sig, handler)
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread (tests) or no such signal here

    def _start_connect(self) -> None:
        self._connecting = True
        self._connect(self._connector)

    def _on_signal(self) -> None:
        self.call_later(self._quit_as, LEAVE)  # SIGTERM: nobody to ask; keep receiving

    def _on_hangup(self) -> None:
        """The terminal is gone (SSH dropped, tmux killed): a service keeps running (the
        console is only its client); a receiver in this process closes cleanly. Then
        leave at once: Textual's own shutdown would wait forever to write to it."""
        backend, self.backend = self.backend, None
        closing = self._quitting and not self._backend_closed.is_set()
        self._quitting = True

        def finish() -> None:
            try:
                if backend is not None:
                    backend.close()
                elif closing:  # a quit's close worker is finishing: let it
                    self._backend_closed.wait(CLOSE_WAIT)
            finally:
                os._exit(0)

        threading.Thread(target=finish, name="dicomtui-hangup", daemon=True).start()

    @work(thread=True, exclusive=True, group="connect", exit_on_error=False)
    def _connect(self, connector: Connector) -> None:
        try:
            backend = connector()
        except Exception as exc:  # BackendError, or a surprise: both said on screen
            self.post_message(msg.ConnectFailed(_reason(exc)))
            return
        start_error = self._autostart(backend)
        self._warm_up()
        self.post_message(msg.Connected(backend, start_error))

    @staticmethod
    def _warm_up() -> None:
        """Load pydicom's UID names here, not on the UI thread at the first Log row."""
        from dicomtui.tui.screens.log_rows import sop_class_name
        sop_class_name("1.2.840.10008.1.1")

    def _autostart(self, backend) -> str:
        """Start a local receiver unless told not to; the reason when it cannot."""
        if backend.mode != "local" or self.no_start:
            return ""
        try:
            wanted = {v.name: v.value for v in backend.settings()}.get("autostart", True)
            if wanted:
                backend.start()
        except BackendError as exc:
            return str(exc)
        return ""

    @on(msg.Connected)
    def _connected(self, message: msg.Connected) -> None:
        self._connecting = False
        if self._quitting:  # quit while connecting: close what arrived, then go
            self._close(message.backend)
            return
        self.backend, self.problem = message.backend, ""
        notice = getattr(message.backend, "notice", "")
        if notice:
            self.notify(notice, severity="warning", timeout=15)
        if message.start_error:
            self.notify(message.start_error, title="receiver not started",
                        severity="error", timeout=15)
        self.poll()
        self._refresh_screens()

    @on(msg.ConnectFailed)
    def _connect_failed(self, message: msg.ConnectFailed) -> None:
        self._connecting = False
        if self._quitting:
            self._backend_closed.set()
            self.exit()
            return
        self.problem = message.reason
        self.notify(message.reason, title="cannot open the receiver", severity="error",
                    timeout=20)
        self._refresh_screens()

    def action_quit(self) -> None:
        """Quit; first ask about a receiver a console started (a service started
        otherwise, e.g. by systemd, is never stopped from here)."""
        snap, backend = self.snapshot, self.backend
        if (self._quitting or backend is None or backend.mode != "service" or snap is None
                or snap.started_by != "console" or self.unreachable):
            self._quit_as(LEAVE)
            return
        active = snap.associations
        busy = "" if not active else (
            f"{len(active)} association(s) active "
            f"({', '.join(sorted({a.calling_ae or '?' for a in active}))}): stopping "
            "aborts them once in-flight stores finish; the senders must retry.")
        self.push_screen(QuitChoice(snap.pid, busy), self._quit_as)

    def _quit_as(self, choice: str | None) -> None:
        """Leave the console; with STOP, stop the console-started service first."""
        if self._quitting or choice in (None, CANCEL):
            return
        self._quitting = True
        backend, self.backend = self.backend, None  # the close worker owns it now
        if backend is None and self._connecting:
            self.notify("closing as soon as the receiver has opened", timeout=30)
            return  # _connected or _connect_failed finishes the quit
        if backend is None:
            self._backend_closed.set()
            self.exit()
            return
        stop_service = choice == STOP and backend.mode == "service"
        if backend.mode == "local" or stop_service:
            self.notify("stopping the receiver: in-flight stores finish first",
                        timeout=30)
        self._close(backend, stop_service)

    @work(thread=True, group="close", exit_on_error=False)
    def _close(self, backend, stop_service: bool = False) -> None:
        try:
            if stop_service:
                try:
                    backend.shutdown(CLOSE_WAIT)
                except BackendError:
                    pass  # gone already, or still stopping on its own: nothing to add
            backend.close()
        finally:
            self._backend_closed.set()
            self.post_message(msg.Closed())

    @on(msg.Closed)
    def _on_closed(self) -> None:
        self.exit()

    def on_unmount(self) -> None:
        """Whatever ended the app, a local receiver stops cleanly and the DB is flushed."""
        if self.backend is not None:
            backend, self.backend = self.backend, None
            backend.close()
        elif self._quitting:
            self._backend_closed.wait(CLOSE_WAIT)

    # -- polling: poll -> render -> reschedule ----------------------------------------
    def poll(self) -> None:
        if self.backend is None or self._quitting:
            return
        tail = self.log_screen.tail_request() if self.log_screen else None
        self._poll(self.backend, self._seq, tail)

    @work(thread=True, exclusive=True, group="poll", exit_on_error=False)
    def _poll(self, backend, seq: int, tail) -> None:
        try:
            snapshot = backend.status()
            batch = backend.events(after=seq, limit=LOG_EVENTS_KEPT, kinds=APP_LOG_KINDS)
            rows, cursor, replace = ((None, None, False) if tail is None
                                     else fetch_tail(backend, *tail))
        except Exception as exc:  # a dead service or a bug: shown, and polling goes on
            self.post_message(msg.PollFailed(_poll_reason(backend, exc)))
            return
        self.post_message(msg.Polled(snapshot, batch, rows, cursor,
                                     tail[0] if tail else None, replace))

    @on(msg.Polled)
    def _polled(self, message: msg.Polled) -> None:
        if self._quitting:
            return  # a poll that started before quitting: the screens are going away
        self.set_timer(self.poll_interval, self.poll)
        if self.unreachable:
            self.notify("the service answers again", timeout=5)
        self.snapshot, self.unreachable, self.problem = message.snapshot, False, ""
        self.rates.take(message.snapshot.received_by_second)
        self._take_events(message.batch)
        if self.log_screen is not None and message.tail is not None:
            self.log_screen.add_tail(message.tail, message.tail_cursor, message.tail_filter,
                                     message.tail_replace)
        self._refresh_screens()

    @on(msg.PollFailed)
    def _poll_failed(self, message: msg.PollFailed) -> None:
        if self._quitting:
            return  # the Backend closed under a poll in flight: expected
        self.set_timer(max(1.0, self.poll_interval), self.poll)
        if not self.unreachable:
            self.notify(message.reason, title="lost the receiver", severity="error",
                        timeout=10)
        self.unreachable, self.problem = True, message.reason
        self._refresh_screens()

    def _take_events(self, batch) -> None:
        self._seq = batch.seq
        fresh = [e for e in batch.events if e.kind in APP_LOG_KINDS]
        self.log_events.extend(fresh)
        if self.log_screen is not None and fresh:
            self.log_screen.add_app_log(fresh)

    def display_state(self) -> str:
        """The one word every screen shows for the receiver right now."""
        if self.backend is None:
            return "error" if self.problem else "connecting"
        if self.unreachable:
            return "unreachable"
        return self.snapshot.state if self.snapshot else "connecting"

    def _refresh_screens(self) -> None:
        if self._quitting:
            return
        for screen in self.screen_stack:
            if hasattr(screen, "refresh_view"):
                try:
                    screen.refresh_view()
                except NoMatches:  # the app is tearing the screen down
                    pass

    # -- actions ------------------------------------------------------------------------
    def action_show(self, mode: str) -> None:
        if self.current_mode != mode:
            self.switch_mode(mode)

    def action_cycle(self, step: int) -> None:
        modes = list(self.MODES)
        self.switch_mode(modes[(modes.index(self.current_mode) + step) % len(modes)])

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self._binding_rows()))

    def action_start_stop(self) -> None:
        if self.backend is None or self._service_gone():
            self._retry_connect()
            return
        state = self.snapshot.state if self.snapshot else "stopped"
        if state not in ("running", "starting"):
            self._receiver("start")
            return
        self._confirm_if_busy("stop", "Stop the receiver?", always=True)

    def action_restart(self) -> None:
        if self.backend is None or self._service_gone():
            self._retry_connect()
            return
        self._confirm_if_busy("restart", "Restart the receiver?")

    def _retry_connect(self) -> None:
        if self.backend is not None:  # a service that is gone: look for it, else start it
            backend, self.backend, self.snapshot = self.backend, None, None
            self.unreachable = False
            backend.close()  # a client of a local socket: nothing to wait for
        self.notify("connecting again…", timeout=3)
        self._start_connect()

    def _service_gone(self) -> bool:
        return self.unreachable and getattr(self.backend, "mode", "") == "service"

    def _confirm_if_busy(self, action: str, question: str, always: bool = False) -> None:
        active = self.snapshot.associations if self.snapshot else []
        if not active and not always:
            self._receiver(action)
            return
        callers = ", ".join(sorted({a.calling_ae or "?" for a in active}))
        detail = (f"{len(active)} association(s) active ({callers}). In-flight stores "
                  "finish first; the rest are aborted and the sender must retry."
                  if active else "No association is active. Senders are refused until "
                  "it is started again (s).")
        self.push_screen(Confirm(question, detail, yes=action.capitalize()),
                         lambda yes: self._receiver(action) if yes else None)

    def _receiver(self, action: str) -> None:
        self.notify(f"{action}…", timeout=3)
        self._run_receiver(self.backend, action)

    @work(thread=True, exclusive=True, group="receiver", exit_on_error=False)
    def _run_receiver(self, backend, action: str) -> None:
        try:
            snapshot = getattr(backend, action)()
        except Exception as exc:
            self.post_message(msg.ActionDone(action, error=_reason(exc)))
            return
        self.post_message(msg.ActionDone(action, snapshot))

    @on(msg.ActionDone)
    def _action_done(self, message: msg.ActionDone) -> None:
        if message.error:
            self.notify(message.error, title=f"{message.action} failed", severity="error",
                        timeout=15)
        else:
            self.snapshot = message.snapshot
            self.notify(f"receiver {message.snapshot.state}", timeout=4)
        self._refresh_screens()

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        """App keys sleep while a dialog is open (so 's' there does nothing) and, once
        quitting, nothing may start the receiver again."""
        if action in ("start_stop", "restart") and self._quitting:
            return False
        in_dialog = isinstance(self.screen, ModalScreen)
        return not (in_dialog and action in ("show", "cycle", "start_stop", "restart",
                                             "help"))

    # -- help and the command palette are generated from the bindings ----------------
    def _binding_rows(self) -> list[tuple[str, str, str]]:
        own = [b for b in getattr(self.focused, "BINDINGS", [])  # a table's: o, y
               if isinstance(b, Binding) and b.id]
        return [(b.key_display or b.key, b.description, b.tooltip)
                for b in own + [b for _node, b in our_bindings(self.screen, self)]]

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        shown = list(our_bindings(screen, self))
        for node, binding in shown:
            key = binding.key_display or binding.key
            yield SystemCommand(f"{binding.description} ({key})",
                                binding.tooltip or binding.description,
                                partial(self.run_action, binding.action, node))
        for node, binding in our_bindings(self):  # an app key the screen's shadows:
            if not any(b is binding for _n, b in shown):  # still a command, no key
                yield SystemCommand(binding.description,
                                    binding.tooltip or binding.description,
                                    partial(self.run_action, binding.action, node))
        yield from super().get_system_commands(screen)


GONE = ("Connection refused", "No such file")  # what a socket whose service has exited says


def _poll_reason(backend, exc: Exception) -> str:
    """Why a poll failed, in words; a service that has exited: how to start it again."""
    reason = _reason(exc)
    if getattr(backend, "mode", "") == "service" and any(word in reason for word in GONE):
        return ("the receiver's service is not running any more: press s to start it "
                "from this console, or start `dicomtui serve` (systemd: systemctl start "
                "dicomtui)")
    return reason


def _reason(exc: Exception) -> str:
    return str(exc) if isinstance(exc, BackendError) else f"{type(exc).__name__}: {exc}"


def make_app(connector: Connector, **options) -> DicomTUI:
    """The console, as the entry point and the tests build it."""
    return DicomTUI(connector, **options)
