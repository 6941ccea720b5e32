"""``edgecv serve``: bundles served over the Open Inference Protocol (KServe v2) on Ray Serve.

One Ray Serve application: an ingress deployment (FastAPI) that speaks the protocol
(:mod:`edgecv.serving.protocol`) and refuses malformed or oversized requests before they reach a
model, and one deployment per bundle whose replicas each load the bundle with
:func:`edgecv.load` and run its graph on letterboxed uint8 batches, requests gathered into
batches by ``serve.batch`` up to the bundle's batch profile. :func:`serve` starts it (a local Ray,
or ``address``) and returns a :class:`Server` handle.
"""

# no `from __future__ import annotations`: FastAPI reads the routes' annotations (Request) at run
# time, in the replica, where the class arrives pickled with only the globals its code names
import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from ray import serve as ray_serve

from ..errors import EdgecvError, InvalidImageError
from . import protocol as P

#: the Ray Serve application's name
APP_NAME = "edgecv"
#: the ingress deployment's name (the model deployments are named ``model-<name>``)
INGRESS_NAME = "edgecv-ingress"
#: the default body limit of ``/detect`` (an encoded image); images are letterboxed down anyway
MAX_IMAGE_BYTES = 32 * 2**20
#: how long a readiness probe waits for a model replica
READY_TIMEOUT_S = 2.0


def _image_count(items: list[tuple[np.ndarray, np.ndarray]]) -> int:
    """serve.batch's batch size: the images of the queued requests, not the requests."""
    return sum(len(x) for x, _ in items)


@ray_serve.deployment(ray_actor_options={"num_cpus": 0})
class BundleModel:
    """One bundle's replica: loads it with :func:`edgecv.load` and runs its graph on uint8
    batches [B, H, W, 3], padding a fixed-batch bundle's batch, with the requests of several
    callers gathered into one batch (``batching``) up to the bundle's largest batch.

    Args:
        path: the bundle directory.
        max_batch: the most images in one run of the graph (capped by the bundle's profile).
        batch_wait_s: how long the first request of a batch waits for others.
        batching: gather requests into batches; False runs each request alone.
        replicas: how many replicas the deployment has (for the model config).
        options: passed to :func:`edgecv.load`.
    """

    def __init__(
        self,
        path: str,
        max_batch: int,
        batch_wait_s: float,
        batching: bool,
        replicas: int = 1,
        options: dict | None = None,
    ) -> None:
        from .. import load

        self.det = load(path, **(options or {}))
        manifest = self.det.manifest
        fixed = self.det.fixed_batch
        profile = getattr(self.det, "max_batch", None)  # a TensorRT plan's optimisation profile
        self.max_batch = fixed or max(1, min(max_batch, profile or max_batch))
        self.batching = batching
        self.batch_wait_s = batch_wait_s
        self.replicas = replicas
        h, w = self.det.input_size
        sample = self._run(np.full((1, h, w, 3), 114, np.uint8), None)  # warm, and the outputs' types
        self.outputs = P.output_specs(manifest, sample)
        # serve.batch's setters, on the decorated method (its arguments are fixed at decoration)
        self._batched.set_max_batch_size(self.max_batch)  # type: ignore[attr-defined]
        self._batched.set_batch_wait_timeout_s(batch_wait_s)  # type: ignore[attr-defined]

    def describe(self) -> dict:
        """What the ingress needs to speak for this model: manifest, outputs, batch size, pid."""
        return {
            "manifest": self.det.manifest,
            "outputs": [o.to_json() for o in self.outputs],
            "max_batch_size": self.max_batch,
            "batching": self.batching,
            "batch_wait_us": round(self.batch_wait_s * 1e6),
            "replicas": self.replicas,
            "pid": os.getpid(),
        }

    def pid(self) -> int:
        return os.getpid()

    def _floors(self, n: int, floors: np.ndarray | None) -> np.ndarray:
        """The score floors of ``n`` images: the request's, else the bundle's export floor."""
        if floors is not None:
            return np.asarray(floors, np.float32)
        return np.full(n, self.det.score_floor, np.float32)  # as Detector.extra_inputs without a conf

    def _run(self, batch: np.ndarray, floors: np.ndarray | None) -> dict[str, np.ndarray]:
        """The graph on ``batch``, padded to a fixed-batch bundle's batch and cut back; its score
        floors (where the graph takes them) are ``floors``, else the bundle's export floor."""
        n, fixed = len(batch), self.det.fixed_batch
        if fixed and n < fixed:
            batch = np.concatenate([batch, np.repeat(batch[-1:], fixed - n, 0)])
        extra = None
        if self.det.score_input is not None:
            f = self._floors(n, floors)
            extra = {self.det.score_input: np.concatenate([f, np.repeat(f[-1:], len(batch) - n)])}
        out = self.det._run(batch, extra=extra)
        return {k: np.asarray(v)[:n] for k, v in out.items()}

    async def infer(self, batch: np.ndarray, floors: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The outputs (by manifest name) of a batch of letterboxed uint8 frames [B, H, W, 3] and,
        for a graph that takes them, their score floors [B] (None: the bundle's export floor)."""
        if self.batching:
            return await self._batched((batch, self._floors(len(batch), floors)))
        return await asyncio.to_thread(self._run, batch, floors)

    # two batches in flight: one in the graph while the next gathers (one at a time gave 0.87x the
    # requests per second of no batching with 8 clients on 2 cores; two gave 0.97-1.16x)
    @ray_serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005, max_concurrent_batches=2, batch_size_fn=_image_count)
    async def _batched(self, items: list[tuple[np.ndarray, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        # each request keeps its own floors: the graph runs NMS at their lowest, and each
        # request's results are filtered at its own conf afterwards (by the client or detect)
        batches = [b for b, _ in items]
        out = await asyncio.to_thread(self._run, np.concatenate(batches), np.concatenate([f for _, f in items]))
        ends = np.cumsum([len(b) for b in batches])
        return [{k: v[e - len(b) : e] for k, v in out.items()} for b, e in zip(batches, ends)]

    async def detect(self, image: np.ndarray, conf: float | None) -> Any:
        """The full pipeline on one decoded image (BGR): letterbox, the graph (batched with
        other requests), decode; the result as JSON (``Detections.to_dict()`` for detectors)."""
        det = self.det
        batch, params = det.preprocess([image], "bgr")
        conf = det.conf if conf is None else conf
        floors = det.extra_inputs(1, conf).get(det.score_input or "")
        outputs = await self.infer(batch, floors)
        result = det.postprocess(outputs, params, conf)[0]
        return det.task_def.to_json(result)


app = FastAPI(title="edgecv", docs_url=None, redoc_url=None, openapi_url=None)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


@app.exception_handler(P.ProtocolError)
async def _protocol_error(request: Request, e: P.ProtocolError) -> JSONResponse:
    """Every refused request answers the protocol's error object with the error's status."""
    return _error(e.status, str(e))


def _check_version(name: str, version: str) -> None:
    """404 for a version other than the one a served model has."""
    if version != P.MODEL_VERSION:
        raise P.ProtocolError(f"model '{name}' has no version {version!r} (it serves version {P.MODEL_VERSION})", 404)


@ray_serve.deployment(ray_actor_options={"num_cpus": 0})
@ray_serve.ingress(app)
class Ingress:
    """The Open Inference Protocol over the model deployments, with edgecv's ``/detect`` route.

    Args:
        models: model name -> the handle of its :class:`BundleModel` deployment.
        max_body_bytes: body limit of every route (None: per model, its largest valid infer
            request, :func:`protocol.max_request_bytes`; :data:`MAX_IMAGE_BYTES` for ``/detect``).
    """

    def __init__(self, models: dict, max_body_bytes: int | None = None) -> None:
        self.models = models
        self.max_body_bytes = max_body_bytes
        self.info: dict[str, dict] = {}

    def _known(self, name: str, version: str = P.MODEL_VERSION) -> None:
        if name not in self.models:
            raise P.ProtocolError(f"unknown model '{name}'; this server has {sorted(self.models)}", 404)
        _check_version(name, version)

    async def _describe(self, name: str, version: str = P.MODEL_VERSION) -> dict:
        """What the model's replicas say of it (manifest, outputs, batch), asked once."""
        self._known(name, version)
        if name not in self.info:
            try:
                info = await asyncio.wait_for(self.models[name].describe.remote(), READY_TIMEOUT_S * 5)
            except Exception as e:  # noqa: BLE001 - no replica yet, or it died
                raise P.ProtocolError(f"model '{name}' is not ready ({type(e).__name__}); retry", 503) from None
            info["outputs"] = [P.TensorSpec(o["name"], o["datatype"], tuple(o["shape"])) for o in info["outputs"]]
            info["inputs"] = P.input_specs(info["manifest"])
            self.info[name] = info
        return self.info[name]

    async def _ready(self, name: str) -> bool:
        try:
            await asyncio.wait_for(self.models[name].pid.remote(), READY_TIMEOUT_S)
            return True
        except Exception:  # noqa: BLE001 - no live replica within the timeout
            return False

    async def _body(self, request: Request, limit: int) -> bytes:
        """The request's body, refused (413) by its Content-Length before it is read, and while
        it is read when it comes chunked."""
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise P.ProtocolError(f"Content-Length {declared!r} is not a number")
            if int(declared) > limit:
                raise P.ProtocolError(f"the body is {int(declared)} bytes; this server takes at most {limit}", 413)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise P.ProtocolError(f"the body is over this server's limit of {limit} bytes", 413)
            chunks.append(chunk)
        return b"".join(chunks)

    async def _call(self, name: str, method: str, *args: Any) -> Any:
        """A model deployment's ``method``; a replica that died or is restarting is a 503."""
        from ray import exceptions as rex
        from ray.serve import exceptions as sex

        try:
            return await getattr(self.models[name], method).remote(*args)
        except EdgecvError:
            raise
        except (rex.RayActorError, sex.BackPressureError, sex.DeploymentUnavailableError) as e:
            raise P.ProtocolError(
                f"model '{name}': its replica is unavailable ({type(e).__name__}: it died or is restarting); retry",
                503,
            ) from None
        except rex.RayTaskError as e:  # the model's own error, e.g. InferenceError
            cause = e.as_instanceof_cause()
            if isinstance(cause, P.ProtocolError):
                raise cause from None
            raise P.ProtocolError(f"model '{name}' failed: {cause}", 500) from None

    # -- health and metadata -------------------------------------------------------------------

    @app.get("/v2/health/live")
    async def live(self) -> Response:
        return Response(status_code=200)

    @app.get("/v2/health/ready")
    async def ready(self) -> Response:
        ok = all(await asyncio.gather(*(self._ready(n) for n in self.models)))
        return Response(status_code=200 if ok else 503)

    @app.get("/v2")
    async def server_metadata(self) -> JSONResponse:
        from .. import __version__

        return JSONResponse({"name": "edgecv", "version": __version__, "extensions": ["binary_tensor_data"]})

    @app.get("/v2/models/{name}")
    @app.get("/v2/models/{name}/versions/{version}")
    async def model_metadata(self, name: str, version: str = P.MODEL_VERSION) -> JSONResponse:
        info = await self._describe(name, version)
        return JSONResponse(P.model_metadata(name, info["manifest"], info["outputs"]))

    @app.get("/v2/models/{name}/ready")
    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def model_ready(self, name: str, version: str = P.MODEL_VERSION) -> Response:
        self._known(name, version)
        return Response(status_code=200 if await self._ready(name) else 503)

    @app.get("/v2/models/{name}/config")
    @app.get("/v2/models/{name}/versions/{version}/config")
    async def model_config(self, name: str, version: str = P.MODEL_VERSION) -> JSONResponse:
        info = await self._describe(name, version)
        config = P.model_config(
            name,
            info["manifest"],
            info["outputs"],
            max_batch_size=info["max_batch_size"],
            batch_wait_us=info["batch_wait_us"] if info["batching"] else None,
            replicas=info["replicas"],
        )
        return JSONResponse(config)

    # -- inference -----------------------------------------------------------------------------

    @app.post("/v2/models/{name}/infer")
    @app.post("/v2/models/{name}/versions/{version}/infer")
    async def infer(self, name: str, request: Request, version: str = P.MODEL_VERSION) -> Response:
        info = await self._describe(name, version)
        limit = self.max_body_bytes or P.max_request_bytes(info["manifest"], info["max_batch_size"])
        body = P.decompress(await self._body(request, limit), request.headers.get("content-encoding"), limit)
        req = P.parse_infer_request(body, request.headers.get(P.HEADER_LENGTH))
        batch, floors = P.check_inputs(req, info["inputs"], info["max_batch_size"])
        outputs = await self._call(name, "infer", batch, floors)
        content, header_length = P.infer_response(name, req, outputs)
        headers = {} if header_length is None else {P.HEADER_LENGTH: str(header_length)}
        kind = "application/json" if header_length is None else "application/octet-stream"
        return Response(content, media_type=kind, headers=headers)

    @app.post("/v2/models/{name}/detect")
    async def detect(self, name: str, request: Request) -> Response:
        """edgecv's convenience route: an encoded image (JPEG, PNG...) in the body, the results as
        JSON: ``{"model_name", "detections": [{"box", "score", "class_id", "label"}, ...]}``
        (classifiers: ``"classes"``, segmenters: ``"segmentation"``, their ``to_json``).
        Query parameter ``conf``: the score floor (default: the bundle's)."""
        from ..images import decode_image

        info = await self._describe(name)
        conf = request.query_params.get("conf")
        try:
            conf_value = None if conf is None else float(conf)
        except ValueError:
            raise P.ProtocolError(f"conf={conf!r} is not a number") from None
        body = await self._body(request, self.max_body_bytes or MAX_IMAGE_BYTES)
        if not body:
            raise P.ProtocolError("the body is empty: send the bytes of a JPEG or PNG image")
        try:
            image = await asyncio.to_thread(decode_image, body, "the request body")
        except InvalidImageError as e:
            raise P.ProtocolError(str(e)) from None
        result = await self._call(name, "detect", image, conf_value)
        key = {"detect": "detections", "classify": "classes", "segment": "segmentation"}
        task = info["manifest"].get("task", "detect")
        return JSONResponse({"model_name": name, key.get(task, "result"): result})


# --- starting and stopping --------------------------------------------------------------------


@dataclass
class Server:
    """A running server: its ``url``, the models' URLs, and :meth:`stop`."""

    url: str
    models: dict[str, str]
    started_ray: bool
    deployments: dict[str, str] = field(default_factory=dict)
    _stopped: bool = False

    def model_url(self, name: str) -> str:
        """The URL :func:`edgecv.load` takes for model ``name``."""
        return self.models[name]

    def replica_pids(self, name: str | None = None) -> dict[str, list[int]]:
        """model name -> the process ids of its live replicas (``name``: that model only)."""
        from ray._private import state

        wanted = {n: d for n, d in self.deployments.items() if name is None or n == name}
        found: dict[str, list[int]] = {n: [] for n in wanted}
        for actor in state.actors(actor_state_name="ALIVE").values():
            label = actor.get("Name", "")
            for n, d in wanted.items():
                if label.startswith(f"SERVE_REPLICA::{APP_NAME}#{d}#") and actor.get("Pid"):
                    found[n].append(int(actor["Pid"]))
        return found

    def stop(self) -> None:
        """Delete the application, shut Serve down and, when :func:`serve` started Ray, Ray too."""
        if self._stopped:
            return
        import ray

        self._stopped = True
        try:
            ray_serve.shutdown()
        finally:
            if self.started_ray:
                ray.shutdown()

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_app(
    bundles: dict[str, str],
    *,
    replicas: int = 1,
    max_batch: int = 8,
    batch_wait_ms: float = 5.0,
    batching: bool = True,
    max_body_bytes: int | None = None,
    replica_cpus: float = 0.0,
    options: dict | None = None,
) -> Any:
    """The Ray Serve application serving ``bundles`` (model name -> bundle directory)."""
    models = {}
    for name, path in bundles.items():
        # BundleModel is a serve Deployment once decorated (mypy sees the class)
        models[name] = BundleModel.options(  # type: ignore[attr-defined]
            name=f"model-{name}",
            num_replicas=replicas,
            ray_actor_options={"num_cpus": replica_cpus},
            # a dead replica is noticed and replaced within seconds, not the default 10 s period
            health_check_period_s=1.0,
            health_check_timeout_s=10.0,
            max_ongoing_requests=max(8, 4 * max_batch),
        ).bind(str(path), max_batch, batch_wait_ms / 1000.0, batching, replicas, options)
    return Ingress.options(name=INGRESS_NAME).bind(models, max_body_bytes)  # type: ignore[attr-defined]


def serve(
    bundles: Sequence[str | os.PathLike],
    *,
    replicas: int = 1,
    max_batch: int = 8,
    batch_wait_ms: float = 5.0,
    batching: bool = True,
    host: str = "127.0.0.1",
    port: int = 8000,
    address: str | None = None,
    names: Sequence[str] | None = None,
    max_body_bytes: int | None = None,
    replica_cpus: float = 0.0,
    options: dict | None = None,
) -> Server:
    """Serve ``bundles`` over the Open Inference Protocol on Ray Serve, and return once every
    model is ready.

    Args:
        bundles: bundle directories; each becomes one model deployment.
        replicas: replicas of each model (each loads the bundle in its own process).
        max_batch: the most images one run of a model's graph takes (and one request may carry);
            capped by a TensorRT bundle's profile, and equal to a fixed-batch bundle's batch.
        batch_wait_ms: how long a batch waits for more requests after its first.
        batching: gather concurrent requests into batches (``serve.batch``); False runs each alone.
        host, port: where the HTTP server listens (127.0.0.1: this machine only).
        address: an existing Ray cluster (``ray://...`` or ``auto``); None starts a local Ray,
            which :meth:`Server.stop` shuts down.
        names: model names, one per bundle (default: each manifest's ``name``).
        max_body_bytes: refuse larger request bodies (413); default: per model, its largest
            valid infer request plus 1 MiB, and 32 MiB for ``/detect``.
        replica_cpus: CPUs Ray reserves for each model replica (0: none; the backend's threads
            share the machine).
        options: passed to :func:`edgecv.load` in each replica (e.g. ``{"threads": 1}``).

    Raises:
        EdgecvError: a bundle does not open, two models share a name, or Serve did not start.
    """
    import ray

    from ..bundle import Bundle

    if not bundles:
        raise EdgecvError("serve: give at least one bundle directory")
    if names is not None and len(names) != len(bundles):
        raise EdgecvError(f"serve: {len(names)} names for {len(bundles)} bundles; give one name per bundle")
    table: dict[str, str] = {}
    for i, path in enumerate(bundles):
        b = Bundle.open(path)
        name = names[i] if names is not None else b.manifest["name"]
        if not name or "/" in name:
            raise EdgecvError(f"serve: model name {name!r} must be non-empty and without '/'")
        if name in table:
            raise EdgecvError(
                f"serve: two bundles are named '{name}' ({table[name]} and {path}); name them with --name"
            )
        table[name] = str(Path(path).resolve())
    if replicas < 1 or max_batch < 1 or batch_wait_ms < 0:
        raise EdgecvError("serve: replicas and max_batch must be at least 1, batch_wait_ms at least 0")

    started = False
    if not ray.is_initialized():
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if address is None:
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False)
            started = True
        else:
            ray.init(address=address, log_to_driver=False)
    try:
        ray_serve.start(http_options={"host": host, "port": port}, logging_config={"log_level": "WARNING"})
        app_ = serve_app(
            table,
            replicas=replicas,
            max_batch=max_batch,
            batch_wait_ms=batch_wait_ms,
            batching=batching,
            max_body_bytes=max_body_bytes,
            replica_cpus=replica_cpus,
            options=options,
        )
        ray_serve.run(app_, name=APP_NAME, route_prefix="/")
    except Exception as e:
        try:
            ray_serve.shutdown()
        finally:
            if started:
                ray.shutdown()
        if isinstance(e, EdgecvError):
            raise
        raise EdgecvError(f"serve: Ray Serve did not start the models: {type(e).__name__}: {e}") from e
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    url = f"http://{shown}:{port}"
    return Server(
        url=url,
        models={n: f"{url}/v2/models/{n}" for n in table},
        started_ray=started,
        deployments={n: f"model-{n}" for n in table},
    )
