# OpenLineage provider settings for every Airflow component (here as environment variables; the same keys
# go under [openlineage] in airflow.cfg). The file transport writes one JSON event per line; in production
# use {"type": "http", "url": "<your OpenLineage endpoint>"} instead. tests/lineage runs the example DAGs
# with exactly these settings, the file path put in a temporary folder.
export AIRFLOW__OPENLINEAGE__TRANSPORT='{"type": "file", "log_file_path": "/var/log/airflow/openlineage.jsonl", "append": true}'
export AIRFLOW__OPENLINEAGE__NAMESPACE='norce-pipelines'
