"""The study's pipeline contract: stage parameters, the output layout, dependencies and the stage runner.

- :mod:`nessa_lib.pipeline.params`: each stage's section of ``params.yaml``, checked against its schema.
- :mod:`nessa_lib.pipeline.layout`: the stages and the folders each one reads and writes.
- :mod:`nessa_lib.pipeline.deps`: every stage's ``nessa_lib`` dependencies, from the import graph.
- :mod:`nessa_lib.pipeline.run`: runs a stage's notebook with papermill (``python -m nessa_lib.pipeline.run``).
- :mod:`nessa_lib.pipeline.report`: the browsable HTML report of the executed notebooks.
"""
