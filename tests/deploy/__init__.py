"""Tests of deploy/: Prometheus config and alert rules, Grafana provisioning and dashboards."""
