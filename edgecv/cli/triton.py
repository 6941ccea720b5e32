"""``edgecv triton BUNDLE... -o DIR``: a Triton Inference Server model repository from bundles
(:func:`edgecv.serving.triton.write_repository`), and the commands that serve it."""

from __future__ import annotations

import argparse


def setup_triton(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundles", nargs="+", metavar="BUNDLE", help="bundle directories (onnxruntime, openvino, tensorrt)")
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="the model repository folder (made if missing)")
    p.add_argument(
        "--name",
        action="append",
        dest="names",
        metavar="NAME",
        help="the model's name on the server, once per bundle in order (default: each manifest's name)",
    )
    p.add_argument(
        "--instances", type=int, default=1, help="model instances per model (instance_group count; default 1)"
    )
    p.add_argument(
        "--max-batch",
        type=int,
        default=None,
        help="max_batch_size (default: the bundle's batch profile, 8 for onnxruntime and openvino; "
        "a fixed-batch bundle gets 0)",
    )
    p.add_argument(
        "--max-queue-delay-us",
        type=int,
        default=0,
        help="the most a request waits for others to batch with, in microseconds (default 0)",
    )
    p.add_argument("--no-dynamic-batching", action="store_true", help="leave dynamic_batching out of the configs")
    p.add_argument(
        "--threads", type=int, default=None, help="threads per instance (onnxruntime, openvino; default the backend's)"
    )
    p.add_argument("--streams", type=int, default=None, help="OpenVINO NUM_STREAMS (default the backend's)")
    p.add_argument("--force", action="store_true", help="replace model folders of the same names")


def run_triton(a: argparse.Namespace) -> int:
    from ..serving import triton

    plans = triton.plan_repository(
        a.bundles,
        a.out,
        names=a.names,
        force=a.force,
        instances=a.instances,
        max_batch=a.max_batch,
        dynamic_batching=not a.no_dynamic_batching,
        max_queue_delay_us=a.max_queue_delay_us,
        threads=a.threads,
        streams=a.streams,
    )
    for plan, path in zip(plans, triton.write_models(plans, a.out)):
        c = plan.config
        batching = (
            f"max_batch_size {c.max_batch_size}"
            + (
                f", dynamic batching (queue delay {c.dynamic_batching.max_queue_delay_microseconds} us)"
                if c.HasField("dynamic_batching")
                else ""
            )
            if c.max_batch_size
            else "max_batch_size 0 (fixed batch)"
        )
        kind = "GPU" if plan.bundle.target == "tensorrt" else "CPU"
        print(f"{path}: {plan.bundle.target} bundle {plan.bundle.path}")
        print(f"  {c.platform or c.backend}, {batching}, {c.instance_group[0].count} {kind} instance(s)")
        print(f"  files: config.pbtxt, {triton.LABELS_FILE}, " + ", ".join(f"{triton.VERSION}/{f}" for f in plan.files))
        for machine in plan.plans:
            print(f"  TensorRT plan for {machine}: serve it with the Triton release of that TensorRT version")
    print("serve it with:")
    for command in triton.serve_commands(a.out, plans):
        print(f"  {command}")
    print("  (<yy.mm>: a Triton release, see its support matrix; a client:")
    print('   edgecv.load("http://HOST:8000/v2/models/NAME"))')
    return 0
