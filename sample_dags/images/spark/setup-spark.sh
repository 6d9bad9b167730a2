#!/bin/sh
# Make any Debian-based image a Spark image with the official one's layout (apache/spark-docker):
# SPARK_HOME=/opt/spark with bin/spark-submit, /opt/entrypoint.sh, user spark (185), python3.
# An official Spark image already is one: nothing to do.
set -eu
PYSPARK_VERSION=4.1.2  # = the Spark of the default BASE_IMAGE
if [ -x /opt/spark/bin/spark-submit ] && [ -x /opt/entrypoint.sh ]; then
  exit 0
fi
apt-get update
apt-get install -y --no-install-recommends openjdk-17-jre-headless procps
rm -rf /var/lib/apt/lists/*
python3 -m pip install --no-cache-dir "pyspark==${PYSPARK_VERSION}"
# pyspark's package directory is a complete SPARK_HOME (bin/, jars/ with spark-kubernetes).
ln -s "$(python3 -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')" /opt/spark
mkdir -p /opt/spark-work-dir
ln -s /opt/spark-work-dir /opt/spark/work-dir
chmod 1777 /opt/spark-work-dir
install -m 0755 /opt/sandbox/entrypoint.sh /opt/entrypoint.sh
getent group spark >/dev/null || groupadd --system --gid 185 spark
getent passwd spark >/dev/null || useradd --system --uid 185 --gid spark -d /opt/spark-work-dir spark
