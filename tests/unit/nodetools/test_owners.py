"""Telling our containerd objects from containerd CRI's (and anyone else's) by their labels."""

from __future__ import annotations

import json

from google.protobuf import any_pb2

from cri_protos.containerd.services.containers.v1 import containers_pb2
from cri_runtime.nodetools import owners


def test_ours() -> None:
    pod = owners.of_container({"io.cri-runtime.kind": "sandbox", "io.cri-runtime.pod.name": "web",
                               "io.cri-runtime.pod.namespace": "default"})
    assert pod.text() == "cri-runtime:pod:default/web"
    ctr = owners.of_container({"io.cri-runtime.kind": "container", "io.cri-runtime.container.name": "nginx",
                               "io.cri-runtime.sandbox-id": "abc"})
    assert (ctr.text(), ctr.sandbox_id) == ("cri-runtime:container:nginx", "abc")
    assert owners.of_lease({"io.cri-runtime/owner": "pull"}).text() == "cri-runtime:lease:pull"
    assert owners.of_image({"io.cri-runtime.image": "managed"}).runtime == owners.OURS


def test_containerd_cri_names_from_its_metadata_extension() -> None:
    """containerd 1.6 labels only the kind; the names are in its JSON metadata extension."""
    md = {"Version": "v1", "Metadata": {"ID": "p1", "Name": "web_default_uid_0",
                                        "Config": {"metadata": {"name": "web", "namespace": "default"}}}}
    pod = containers_pb2.Container(id="p1", labels={"io.cri-containerd.kind": "sandbox"}, extensions={
        "io.cri-containerd.sandbox.metadata": any_pb2.Any(type_url="x", value=json.dumps(md).encode())})
    assert owners.of_record(pod) == owners.CriOwner(owners.CONTAINERD_CRI, "pod", "default/web", "p1")
    md = {"Version": "v1", "Metadata": {"ID": "c1", "SandboxID": "p1", "Config": {"metadata": {"name": "nginx"}}}}
    ctr = containers_pb2.Container(id="c1", labels={"io.cri-containerd.kind": "container"}, extensions={
        "io.cri-containerd.container.metadata": any_pb2.Any(type_url="x", value=json.dumps(md).encode())})
    assert owners.of_record(ctr) == owners.CriOwner(owners.CONTAINERD_CRI, "container", "nginx", "p1")
    assert owners.of_image({"io.cri-containerd.image": "managed"}).runtime == owners.CONTAINERD_CRI


def test_anyone_else() -> None:
    other = containers_pb2.Container(id="x", labels={"com.docker/whatever": "1"})
    assert owners.of_record(other) is owners.NONE and owners.NONE.text() == "-"
    assert owners.of_lease({"containerd.io/gc.expire": "soon"}) is owners.NONE
    assert not owners.snapshot_is_ours({"containerd.io/gc.root": "x"})
