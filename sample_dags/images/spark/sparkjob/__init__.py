"""The spark_etl sample: the PySpark job (`etl.py`) and the submit wrapper (`submit.py`)."""
