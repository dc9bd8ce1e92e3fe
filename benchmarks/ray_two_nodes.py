"""The multi-node path of `predict --engine ray`, on one machine: a Ray cluster of a head and a
worker node (separate raylets, one CPU each, Ray's own `ray.cluster_utils.Cluster`), joined with
`--ray-address` as a real cluster would be. On nodes of one CPU the pool has one actor per node
(two), each asking for half a CPU and encoding on one thread (`mmsent.batch.ray_engine.pool_for`).
Prints the cluster, the job's answer, the most CPU Ray promised on each node while it ran (an
actor holds half a CPU, a read task a tenth) and the largest difference from the local engine's
answers on the same input.

    python benchmarks/ray_two_nodes.py --run RUN --input PAIRS [--work DIR]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pyarrow.parquet as pq
from common import ROOT, bench_parser

MMSENT = [sys.executable, "-m", "mmsent"]


def predict(run: Path, source: Path, output: Path, *extra: str) -> dict:
    cmd = [*MMSENT, "predict", str(run), "--input", str(source), "--output", str(output)]
    done = subprocess.run([*cmd, "--overwrite", "--quiet", "--json", *extra], cwd=ROOT, capture_output=True)
    if done.returncode:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{done.stderr.decode()[-2000:]}")
    return json.loads(done.stdout)


class PromisedCpus(threading.Thread):
    """Samples, while the job runs, how much CPU Ray has promised on each node (total less
    available; Ray has no public call for one node's availability), keeping each node's most."""

    def __init__(self, ray):
        super().__init__(daemon=True)
        self.ray, self.most, self.stopped = ray, {}, threading.Event()

    def run(self) -> None:
        from ray._private.state import available_resources_per_node, total_resources_per_node

        while not self.stopped.wait(0.5):
            totals, available = total_resources_per_node(), available_resources_per_node()
            for node, total in totals.items():
                used = total.get("CPU", 0) - available.get(node, {}).get("CPU", 0)
                self.most[node] = max(self.most.get(node, 0.0), used)

    def report(self, nodes: list[dict]) -> str:
        self.stopped.set()
        self.join()
        names = {n["NodeID"]: "worker" for n in nodes}
        names.update({n["NodeID"]: "head" for n in nodes if "node:__internal_head__" in n["Resources"]})
        most = sorted(self.most.items())
        return ", ".join(f"{names.get(node, node[:8])} {cpus:.2f}" for node, cpus in most)


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--run", required=True, type=Path)
    parser.add_argument("--input", required=True, type=Path)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "mmsent-two-nodes")
    args = parser.parse_args()
    from ray.cluster_utils import Cluster

    args.work.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        import ray

        ray.init(address=cluster.address, log_to_driver=False)
        nodes = [n for n in ray.nodes() if n["Alive"]]
        print(f"cluster at {cluster.address}: {len(nodes)} nodes, {ray.cluster_resources()['CPU']:.0f} CPUs")
        promised = PromisedCpus(ray)
        promised.start()
        on_ray = predict(args.run, args.input, args.work / "two-nodes.parquet", "--engine", "ray",
                         "--ray-address", cluster.address)  # fmt: skip
        print(f"ray, two nodes: {on_ray}")
        print(f"most CPU promised while it ran: {promised.report(nodes)}")
        ray.shutdown()
    finally:
        cluster.shutdown()
    local = predict(args.run, args.input, args.work / "local.parquet")
    print(f"local: {local}")
    columns = ["p_positive", "p_neutral", "p_negative"]
    a = pq.read_table(args.work / "local.parquet").to_pandas().set_index("id").sort_index()
    b = pq.read_table(args.work / "two-nodes.parquet").to_pandas().set_index("id").loc[a.index]
    print(f"same ids: {a.index.equals(b.index)}, same labels: {(a.label == b.label).all()}, "
          f"largest probability difference: {(a[columns] - b[columns]).abs().max().max():.2e}")  # fmt: skip


if __name__ == "__main__":
    main()
