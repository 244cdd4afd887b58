"""deploy/kubernetes: the Dask operator's DaskCluster, the driver Job and the Dockerfile.

No Kubernetes here: the manifests are parsed and checked against what the operator's
DaskCluster schema requires (``spec.scheduler.spec``, ``spec.scheduler.service``,
``spec.worker.spec``; pod specs with named containers) and against each other.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import yaml

KUBE = Path(__file__).parents[1] / "deploy" / "kubernetes"
GIB = 2**30


def _docs(name: str) -> dict[str, dict]:
    return {d["kind"]: d for d in yaml.safe_load_all((KUBE / name).read_text())}


def _container(pod_spec: dict, name: str) -> dict:
    (c,) = [c for c in pod_spec["containers"] if c["name"] == name]
    assert c["image"] and isinstance(c["args"], list)
    return c


def _option(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def _bytes(quantity: str) -> int:
    number, unit = re.fullmatch(r"(\d+)(Gi|GiB)", quantity).groups()
    return int(number) * GIB


def test_dask_cluster_has_what_the_operator_requires():
    cluster = _docs("cluster.yaml")["DaskCluster"]
    assert cluster["apiVersion"] == "kubernetes.dask.org/v1"
    name = cluster["metadata"]["name"]
    spec = cluster["spec"]
    assert {"scheduler", "worker"} <= set(spec)
    assert {"spec", "service"} <= set(spec["scheduler"]) and "spec" in spec["worker"]
    # scheduler: the dask command on 8786, the dashboard on 8787, the service exposing both
    sched = _container(spec["scheduler"]["spec"], "scheduler")
    assert sched["args"][:2] == ["dask", "scheduler"]
    assert _option(sched["args"], "--port") == "8786"
    assert _option(sched["args"], "--dashboard-address") == ":8787"
    ports = {p["name"]: p["containerPort"] for p in sched["ports"]}
    assert ports == {"tcp-comm": 8786, "http-dashboard": 8787}
    assert sched["readinessProbe"]["httpGet"]["port"] == "http-dashboard"
    service = spec["scheduler"]["service"]
    assert service["selector"] == {
        "dask.org/cluster-name": name,
        "dask.org/component": "scheduler",
    }
    assert {p["port"]: p["targetPort"] for p in service["ports"]} == {
        8786: "tcp-comm",
        8787: "http-dashboard",
    }
    # workers: single-threaded, the memory limit inside the pod's, the request equal to it
    worker = spec["worker"]
    assert isinstance(worker["replicas"], int) and worker["replicas"] >= 1
    w = _container(worker["spec"], "worker")
    assert w["args"][:2] == ["dask", "worker"] and "$(DASK_WORKER_NAME)" in w["args"]
    assert _option(w["args"], "--nthreads") == "1"
    limits, requests = w["resources"]["limits"], w["resources"]["requests"]
    assert limits == requests and limits["cpu"] == "1"
    assert _bytes(_option(w["args"], "--memory-limit")) == _bytes(limits["memory"])
    assert w["image"] == sched["image"]


def test_worker_memory_follows_the_sizing_rule():
    spec = importlib.util.spec_from_file_location("deploy_hpc", KUBE.parent / "hpc.py")
    hpc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hpc)
    job = _docs("job.yaml")["Job"]
    driver = _container(job["spec"]["template"]["spec"], "driver")
    chunk_cells = int(_option(driver["args"], "--chunk-cells"))
    w = _container(_docs("cluster.yaml")["DaskCluster"]["spec"]["worker"]["spec"], "worker")
    assert _bytes(_option(w["args"], "--memory-limit")) == hpc.worker_memory(chunk_cells)


def test_driver_job_runs_dynadask_against_the_cluster():
    docs = _docs("cluster.yaml")
    cluster, claim = docs["DaskCluster"], docs["PersistentVolumeClaim"]
    job = _docs("job.yaml")["Job"]
    assert job["apiVersion"] == "batch/v1"
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    driver = _container(pod, "driver")
    assert driver["args"][:2] == ["dynadask", "run"]
    # the operator's service for the scheduler is <cluster name>-scheduler
    address = f"tcp://{cluster['metadata']['name']}-scheduler:8786"
    assert _option(driver["args"], "--scheduler") == address
    assert driver["image"] == _container(cluster["spec"]["worker"]["spec"], "worker")["image"]
    # the store's folder is the same shared volume at the same path in the driver and workers
    worker_pod = cluster["spec"]["worker"]["spec"]
    mounts = {}
    for p, c in [(pod, driver), (worker_pod, _container(worker_pod, "worker"))]:
        claims = {
            v["name"]: v.get("persistentVolumeClaim", {}).get("claimName") for v in p["volumes"]
        }
        mounts[c["name"]] = {(claims[m["name"]], m["mountPath"]) for m in c["volumeMounts"]}
    shared = (claim["metadata"]["name"], "/data")
    assert shared in mounts["driver"] and shared in mounts["worker"]
    assert "ReadWriteMany" in claim["spec"]["accessModes"]
    assert _option(driver["args"], "--out").startswith("/data/")


def test_dockerfile_installs_dynadask_with_the_deploy_extra():
    text = (KUBE / "Dockerfile").read_text()
    lines = [x.strip() for x in text.splitlines() if x.strip() and not x.startswith("#")]
    assert lines[0].startswith("FROM python:3.1")
    assert "COPY dynadask ./dynadask" in lines and "COPY pyproject.toml README.md ./" in lines
    (install,) = [x for x in lines if x.startswith("RUN pip install")]
    assert '".[deploy]"' in install and "bokeh" in install  # bokeh: the dashboard
    assert any(x.startswith("USER ") for x in lines)
    # the files the image copies exist where the build (from the repository root) finds them
    root = KUBE.parents[1]
    assert (root / "pyproject.toml").is_file() and (root / "dynadask" / "__init__.py").is_file()
    assert "deploy = [" in (root / "pyproject.toml").read_text()
