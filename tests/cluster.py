"""A scale-out deployment on one machine, for the fault tests and ``bench/scale.py``: a
PostgreSQL server of its own (so it can be restarted), a Chroma server (``chroma run``), N
``gradguide serve`` replicas in webhook mode (each its own process, data dir and port), and
the fake Bot API delivering webhook updates round-robin across them (a load balancer).
``PollingBot`` is the other deployment: one ``gradguide serve`` in long polling.

    with Cluster(tmp_path, replicas=2) as cluster:
        cluster.tg.send_text(user, "试用期最长多久？")
        cluster.replicas[0].kill()        # SIGKILL
        cluster.postgres.restart()
        cluster.chroma.stop(); cluster.chroma.start()

Every part is the real thing; only Telegram is the fake (tests/fakes/telegram_server.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from tests.fakes.telegram_server import FakeTelegram

ROOT = Path(__file__).resolve().parent.parent
FORUM = -1001234567890
COUNSELLOR = 501
WEBHOOK_SECRET = "cluster-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(check: Any, what: str, timeout: float, process: subprocess.Popen[bytes] | None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            if check():
                return
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start within {timeout:g} s")
        time.sleep(0.1)


def _stop(process: subprocess.Popen[bytes] | None, timeout: float = 15) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class ChromaServer:
    """``chroma run`` on a fixed port and path, so it can be stopped and started again."""

    def __init__(self, path: Path, port: int | None = None) -> None:
        self.path = path
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        chroma = shutil.which("chroma", path=str(Path(sys.executable).parent)) or shutil.which(
            "chroma"
        )
        assert chroma, "the `chroma` command (from the chromadb package) is not installed"
        self.path.mkdir(parents=True, exist_ok=True)
        command = [chroma, "run", "--path", str(self.path / "db"), "--host", "127.0.0.1"]
        command += ["--port", str(self.port)]
        with (self.path / "server.log").open("ab") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

        def up() -> bool:
            url = f"{self.url}/api/v2/heartbeat"
            return httpx.get(url, timeout=1, trust_env=False).is_success

        _wait(up, "chroma run", 60, self.process)

    def stop(self) -> None:
        _stop(self.process)


class PostgresServer:
    """A PostgreSQL server of the test's own (initdb into a temporary directory, trust
    auth, loopback only), so a test can restart it without touching the machine's."""

    def __init__(self, port: int | None = None) -> None:
        # its own directory under the system's temporary directory: the server runs as the
        # postgres user, who cannot enter a test's private (0700) temporary directory
        self.path = Path(tempfile.mkdtemp(prefix="gradguide-postgres-"))
        self.port = port or free_port()
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        assert bins, "PostgreSQL server binaries (Debian's postgresql package) are not installed"
        self.bin = bins[-1].parent

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stdout}{done.stderr}")

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.path, "postgres", "postgres")
        self._run("initdb", "-D", str(self.path / "data"), "-A", "trust", "-U", "postgres")

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.path} -c fsync=off"
        self._run(
            "pg_ctl",
            "-D",
            str(self.path / "data"),
            "-o",
            options,
            "-l",
            str(self.path / "server.log"),
            "-w",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        with contextlib.suppress(RuntimeError):
            self._run("pg_ctl", "-D", str(self.path / "data"), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.path, ignore_errors=True)

    def restart(self, pause_s: float = 1.0) -> None:
        """Down (closing every connection), a pause, and up again."""
        self.stop()
        time.sleep(pause_s)
        self.start()


class Replica:
    """One ``gradguide serve`` process in webhook mode."""

    def __init__(self, name: str, data_dir: Path, env: dict[str, str]) -> None:
        self.name = name
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/telegram"
        self.env = {
            **env,
            "GRADGUIDE_DATA_DIR": str(data_dir),
            "GRADGUIDE_WEBHOOK_URL": self.url,
            "GRADGUIDE_WEBHOOK_LISTEN": "127.0.0.1",
            "GRADGUIDE_WEBHOOK_PORT": str(self.port),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir / "serve.log"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bot", "serve"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

        def up() -> bool:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True

        _wait(up, f"replica {self.name} (see {self.log})", 120, self.process)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: no shutdown, no goodbye (a crashed machine)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        _stop(self.process)


class PollingBot:
    """One ``gradguide serve`` process in long polling (the default mode), on a data dir
    (embedded Chroma, ingested beforehand) and a database that outlive it: started,
    killed with SIGKILL, started again.

    In long polling python-telegram-bot confirms the updates it fetched with its next
    ``getUpdates`` call, at once: Telegram never delivers them again, whatever happens to
    the process that is handling them."""

    def __init__(self, tg: FakeTelegram, data_dir: Path, database_url: str, **settings: str):
        self.tg = tg
        self.data_dir = data_dir
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "TELEGRAM_BOT_TOKEN": tg.token,
            "GRADGUIDE_TELEGRAM_API_URL": tg.base_url,
            "GRADGUIDE_DATA_DIR": str(data_dir),
            "GRADGUIDE_DATABASE_URL": database_url,
            "GRADGUIDE_COUNSELLOR_CHAT_ID": str(FORUM),
            "GRADGUIDE_COUNSELLOR_IDS": str(COUNSELLOR),
            "GRADGUIDE_OFFICE_HOURS": "daily 00:00-23:59",
            "GRADGUIDE_LOG_LEVEL": "WARNING",
            **{f"GRADGUIDE_{k.upper()}": v for k, v in settings.items()},
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir / "serve.log"
        self.starts = 0

    def ingest(self) -> None:
        """The bundled knowledge base into the data dir's embedded Chroma (once, before
        any bot starts: a process of its own, as an operator would run it)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "bot", "kb", "ingest", str(ROOT / "knowledge")],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
        )

    def start(self, timeout: float = 240) -> None:
        """Start ``gradguide serve`` and wait until it polls for updates."""
        assert not self.running, "one polling process per bot token"
        calls = len(self.tg.requests)
        self.starts += 1
        with self.log.open("ab") as log:
            log.write(f"\n--- start {self.starts}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bot", "serve"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        _wait(
            lambda: any(r.method == "getUpdates" for r in self.tg.requests[calls:]),
            f"gradguide serve (polling; see {self.log})",
            timeout,
            self.process,
        )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown, no goodbye (a crashed machine, the OOM killer)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        _stop(self.process)

    def logs(self, tail: int = 6000) -> str:
        return self.log.read_text(errors="replace")[-tail:] if self.log.exists() else ""


class Cluster:
    """PostgreSQL + Chroma server + ``replicas`` bot processes + the fake Bot API."""

    def __init__(self, root: Path, replicas: int = 2, **settings: str) -> None:
        self.root = root
        self.tg = FakeTelegram(fail_on_violations=True)
        self.postgres = PostgresServer()
        self.chroma = ChromaServer(root / "chroma")
        self.settings = settings
        self.replicas: list[Replica] = []
        self._count = replicas

    def env(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "TELEGRAM_BOT_TOKEN": self.tg.token,
            "GRADGUIDE_TELEGRAM_API_URL": self.tg.base_url,
            "GRADGUIDE_DATABASE_URL": self.postgres.url,
            "GRADGUIDE_CHROMA_URL": self.chroma.url,
            "GRADGUIDE_COUNSELLOR_CHAT_ID": str(FORUM),
            "GRADGUIDE_COUNSELLOR_IDS": str(COUNSELLOR),
            "GRADGUIDE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "GRADGUIDE_OFFICE_HOURS": "daily 00:00-23:59",
            "GRADGUIDE_LOG_LEVEL": "WARNING",
            **{f"GRADGUIDE_{k.upper()}": v for k, v in self.settings.items()},
        }

    def __enter__(self) -> Cluster:
        try:
            self.tg.__enter__()
            self.tg.forum(FORUM, "Counsellors")
            self.postgres.init()
            self.postgres.start()
            self.chroma.start()
            env = self.env()
            subprocess.run(  # the knowledge base, once, into the Chroma server
                [sys.executable, "-m", "bot", "kb", "ingest", str(ROOT / "knowledge")],
                cwd=ROOT,
                env={**env, "GRADGUIDE_DATA_DIR": str(self.root / "ingest")},
                check=True,
                capture_output=True,
            )
            for _ in range(self._count):
                self.add_replica(env)
        except BaseException:
            self.close()
            raise
        return self

    def add_replica(self, env: dict[str, str] | None = None) -> Replica:
        replica = Replica(
            f"r{len(self.replicas) + 1}",
            self.root / f"replica-{len(self.replicas) + 1}",
            env or self.env(),
        )
        replica.start()
        self.replicas.append(replica)
        self.route()
        return replica

    def route(self, *replicas: Replica) -> None:
        """The load balancer: spread webhook deliveries over these replicas (default: all
        that are running)."""
        chosen = replicas or tuple(
            r for r in self.replicas if r.process is not None and r.process.poll() is None
        )
        self.tg.webhook_targets = [r.url for r in chosen]
        self.tg.set_webhook(chosen[0].url, secret_token=WEBHOOK_SECRET)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        for replica in self.replicas:
            replica.stop()
        self.chroma.stop()
        self.postgres.remove()
        self.tg.__exit__(None, None, None)

    def logs(self, tail: int = 3000) -> str:
        """Every replica's log (its last ``tail`` characters), for a failing test."""
        return "\n".join(
            f"--- {r.name}\n{r.log.read_text(errors='replace')[-tail:]}"
            for r in self.replicas
            if r.log.exists()
        )
