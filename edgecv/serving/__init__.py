"""Serving bundles beyond one process: Triton model repositories (:mod:`edgecv.serving.triton`)
and the servers and clients of the Open Inference Protocol. Importing this package imports
nothing heavy (no ray, no tritonclient): each module imports its library when it is used."""
