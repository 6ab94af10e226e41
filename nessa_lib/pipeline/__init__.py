"""The study's pipeline: the whole ``params.yaml`` checked, the output layout, dependencies and the stage runner.

What each stage computes lives in :mod:`nessa_lib.stages` (one module per stage, with its parameters); this
package runs the stages and keeps ``dvc.yaml`` honest about them.

- :mod:`nessa_lib.pipeline.params`: the whole ``params.yaml`` checked through every stage's parameters.
- :mod:`nessa_lib.pipeline.layout`: the stages and the folders each one reads and writes.
- :mod:`nessa_lib.pipeline.deps`: every stage's ``nessa_lib`` dependencies, from the import graph.
- :mod:`nessa_lib.pipeline.run`: runs a stage's notebook with papermill (``python -m nessa_lib.pipeline.run``).
- :mod:`nessa_lib.pipeline.presets`: named sets of changes to ``params.yaml`` (VoxCeleb recipes, real pairs).
- :mod:`nessa_lib.pipeline.report`: the browsable HTML report of the executed notebooks.
"""
