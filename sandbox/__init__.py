"""A local, AKS-like Airflow sandbox: kind with a simulated virtual node, Airflow 3 on Celery."""
