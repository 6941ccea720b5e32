"""Everything edgecv knows about TensorRT, in one package. The word for the serialized
artifact TensorRT builds from a graph and runs is "plan".

- :mod:`.backend`: the detector that runs a bundle's plan (the registry's ``tensorrt``);
- :mod:`.plans`: the plan store: build settings, which plan fits this GPU and TensorRT, and
  :func:`.plans.ensure_plan`, which finds a plan or builds and keeps one (used by loading,
  ``edgecv build`` and the export);
- :mod:`.api`: the TensorRT Python API, 10.x and 11.x;
- :mod:`.cuda`: the few CUDA runtime calls the backend needs (cuda-python or libcudart);
- :mod:`.static_check` and :mod:`.operators`: what TensorRT would refuse in a graph, checked
  on any machine against its ONNX operator tables (``edgecv doctor``).

Importing it imports none of them; none of them imports ``tensorrt`` until it is used. The
modules import one another in one direction only: backend -> plans -> api, cuda;
static_check -> plans, operators.
"""
