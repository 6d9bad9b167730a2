#!/bin/bash
# The container entrypoint Spark on Kubernetes expects, for images without one (setup-spark.sh installs
# it as /opt/entrypoint.sh; official Spark images bring their own). Spark starts its pods with
# args `driver ...` or `executor ...` and passes everything else in environment variables set by
# its BasicDriverFeatureStep / BasicExecutorFeatureStep (SPARK_DRIVER_BIND_ADDRESS,
# SPARK_DRIVER_URL, SPARK_EXECUTOR_ID, ...). Any other command runs as given.
set -euo pipefail
role="${1:-}"
case "$role" in
  driver)
    shift
    exec "$SPARK_HOME/bin/spark-submit" \
      --conf "spark.driver.bindAddress=${SPARK_DRIVER_BIND_ADDRESS}" \
      --conf "spark.executorEnv.SPARK_DRIVER_POD_IP=${SPARK_DRIVER_BIND_ADDRESS}" \
      --deploy-mode client "$@"
    ;;
  executor)
    shift
    opts=()
    for name in "${!SPARK_JAVA_OPT_@}"; do opts+=("${!name}"); done
    classpath="${SPARK_CLASSPATH:-}:${SPARK_HOME}/jars/*:${PWD}"
    exec java "${opts[@]}" -Xms"$SPARK_EXECUTOR_MEMORY" -Xmx"$SPARK_EXECUTOR_MEMORY" \
      -cp "$classpath" org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend \
      --driver-url "$SPARK_DRIVER_URL" --executor-id "$SPARK_EXECUTOR_ID" \
      --cores "$SPARK_EXECUTOR_CORES" --app-id "$SPARK_APPLICATION_ID" \
      --hostname "$SPARK_EXECUTOR_POD_IP" --resourceProfileId "$SPARK_RESOURCE_PROFILE_ID" \
      --podName "$SPARK_EXECUTOR_POD_NAME"
    ;;
  *)
    exec "$@"
    ;;
esac
