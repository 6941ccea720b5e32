"""The client of a served model: ``edgecv.load("http://HOST:PORT/v2/models/NAME")`` returns a
:class:`RemoteDetector`, a :class:`~edgecv.runtimes.base.Detector` whose graph runs on an Open
Inference Protocol server (``edgecv serve``, or Triton serving an ``edgecv triton`` repository)
through ``tritonclient.http``. The letterbox, its inverse and the task's decoding run here, built
from the manifest the server's model config carries, exactly as for the local bundle."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import numpy as np

from ..errors import EdgecvError, InferenceError
from ..runtimes.base import Detector
from .protocol import manifest_from_config

T = TypeVar("T")
#: HTTP statuses worth another try: the server or one of its replicas is not there right now
RETRY_STATUSES = frozenset({"502", "503", "504"})


def parse_model_url(url: str) -> tuple[str, bool, str, str]:
    """Split ``http(s)://HOST:PORT[/BASE]/v2/models/NAME[/versions/V]`` into the server part
    ``tritonclient.http`` takes (``HOST:PORT[/BASE]``), whether it is https, the model name and
    version ('' for the server's choice).

    Raises:
        EdgecvError: the URL is not of that form.
    """
    parts = urlsplit(url)
    path = parts.path.rstrip("/").split("/")
    if parts.scheme not in ("http", "https") or not parts.netloc or "v2" not in path:
        raise EdgecvError(
            f"'{url}' is not a model URL: use http://HOST:PORT/v2/models/NAME (the URL `edgecv serve` prints)"
        )
    i = len(path) - 1 - path[::-1].index("v2")
    rest = path[i + 1 :]
    if len(rest) not in (2, 4) or rest[0] != "models" or not rest[1] or (len(rest) == 4 and rest[2] != "versions"):
        raise EdgecvError(f"'{url}' is not a model URL: its path must end in /v2/models/NAME[/versions/VERSION]")
    server = parts.netloc + "/".join(path[:i])
    return server, parts.scheme == "https", unquote(rest[1]), rest[3] if len(rest) == 4 else ""


class RemoteDetector(Detector):
    """A model served over the Open Inference Protocol, used like a local bundle.

    Args:
        url: ``http(s)://HOST:PORT/v2/models/NAME`` (optionally ``/versions/V``).
        retries: further tries of a request that met a connection error or a 502/503/504 (a
            replica that died or is restarting), with exponential back-off from ``backoff_s``.
        timeout_s: connection and network timeout of each try.
        **options: as for a local bundle (``conf``, ``color``, ``batch_size``...; see
            :class:`~edgecv.runtimes.base.Detector`).

    Thread-safe: each thread talks to the server on its own ``tritonclient.http`` client.

    Raises:
        EdgecvError: the server cannot be reached after the retries, has no such model, or the
            model was not served from an edgecv bundle (no ``edgecv_manifest`` in its config).
    """

    key = "remote"
    thread_safe = True

    def __init__(
        self, url: str, *, retries: int = 3, backoff_s: float = 0.25, timeout_s: float = 60.0, **options: Any
    ) -> None:
        self.url = url
        self.server, self.ssl, self.model_name, self.model_version = parse_model_url(url)
        self.retries = max(0, int(retries))
        self.backoff_s = float(backoff_s)
        self.timeout_s = float(timeout_s)
        self._local = threading.local()
        self._clients: list[Any] = []
        self._clients_lock = threading.Lock()
        #: the model's configuration as the server gives it (Triton's JSON form)
        self.config: dict = self._request(
            "get the model config", lambda c: c.get_model_config(self.model_name, self.model_version)
        )
        super().__init__(manifest_from_config(self.config), None, **options)
        served_batch = int(self.config.get("max_batch_size") or 0)
        if served_batch > 0:  # the server takes 1..max_batch_size images and pads a fixed batch itself
            self.fixed_batch = None
            self.batch_size = min(self.batch_size, served_batch)

    # -- the backend interface ---------------------------------------------------------------------

    def activate_impl(self) -> None:
        import tritonclient.http  # noqa: F401  - fail here, with the extra to install, not mid-call

    def infer_impl(self, batch: np.ndarray, extra: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        from tritonclient.http import InferInput, InferRequestedOutput

        names = list(self.output_names.values())
        request_id = uuid.uuid4().hex
        inp = InferInput(self.input_name, list(batch.shape), "UINT8")
        inp.set_data_from_numpy(np.ascontiguousarray(batch), binary_data=True)
        inputs = [inp]
        for name, value in (extra or {}).items():  # the score floors, one per image
            inputs.append(InferInput(name, list(value.shape), "FP32"))
            inputs[-1].set_data_from_numpy(np.ascontiguousarray(value, np.float32), binary_data=True)
        outputs = [InferRequestedOutput(n, binary_data=True) for n in names]
        result = self._request(
            "infer",
            lambda c: c.infer(
                self.model_name, inputs, model_version=self.model_version, outputs=outputs, request_id=request_id
            ),
        )
        got = result.get_response().get("id")
        if got != request_id:
            raise InferenceError(f"{self.url}: the response answers request {got!r}, not {request_id!r}: discarded")
        arrays = {}
        for n in names:
            a = result.as_numpy(n)
            if a is None or a.shape[:1] != batch.shape[:1]:
                what = "no output" if a is None else f"output of shape {list(a.shape)}"
                raise InferenceError(f"{self.url}: the server returned {what} for '{n}' for a batch of {len(batch)}")
            arrays[n] = a
        return arrays

    def release_impl(self) -> None:
        with self._clients_lock:
            clients, self._clients = self._clients, []
        for c in clients:
            try:
                c.close()
            except Exception:  # noqa: BLE001 - closing from another thread than its own, at exit
                pass

    # -- talking to the server ---------------------------------------------------------------------

    def _client(self, fresh: bool = False) -> Any:
        """This thread's client (a new one after a connection error)."""
        import tritonclient.http as httpclient

        client = getattr(self._local, "client", None)
        if client is None or fresh:
            client = httpclient.InferenceServerClient(
                self.server, ssl=self.ssl, connection_timeout=self.timeout_s, network_timeout=self.timeout_s
            )
            self._local.client = client
            with self._clients_lock:
                self._clients.append(client)
        return client

    def _request(self, what: str, call: Callable[[Any], T]) -> T:
        """``call(client)``, tried again after a connection error or a 502/503/504, with back-off;
        then an :class:`EdgecvError` naming the URL and the last error."""
        from tritonclient.utils import InferenceServerException

        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                return call(self._client(fresh=bool(attempt) and not last.startswith("HTTP")))
            except InferenceServerException as e:
                status = e.status()
                if status is None:  # raised by the client itself (a response it cannot read)
                    raise EdgecvError(f"{self.url}: could not {what}: {e.message()}") from None
                if status not in RETRY_STATUSES:
                    if status == "404":
                        raise EdgecvError(f"{self.url}: {e.message()} (is the model name right?)") from None
                    kind = InferenceError if status == "500" else EdgecvError
                    raise kind(f"{self.url}: the server refused to {what} (HTTP {status}): {e.message()}") from None
                last = f"HTTP {status}: {e.message()}"
            except Exception as e:  # noqa: BLE001 - refused, reset or timed-out connections (OSError, gevent's)
                last = f"{type(e).__name__}: {e}"
        raise EdgecvError(
            f"{self.url}: could not {what} after {self.retries + 1} tries ({last}); is the server running "
            "and reachable? (`edgecv serve` prints this URL)"
        )

    def __repr__(self) -> str:
        return f"<RemoteDetector {self.model_name} {self.manifest.get('precision', '')} at {self.url}>"
