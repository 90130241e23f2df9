"""The batch on Apache Beam (the ``beam`` extra): ``batch.py`` builds and runs the pipeline,
``handlers.py`` holds RunInference's model handlers (in-process networks, or TF Serving)."""
