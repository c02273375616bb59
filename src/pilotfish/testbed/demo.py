"""The demo "shop" cluster: five pods, four real servers, and an inventory describing them.

  shop/frontend     app=frontend      the load client (no server)
  shop/cart-api     app=cart-api      Python API on 8080
  shop/catalog      app=catalog       nginx on 80
  shop/redis        app=redis         redis on 6379
  kube-system/dns   k8s-app=kube-dns  dnsmasq on 53/udp

Each service gets a cluster IP from the top of the testbed subnet, added to its one backing
pod (there is no kube-proxy: the address simply lives on the pod), and DNS names
`SERVICE.NAMESPACE.svc.pilotfish.test` -> cluster IP besides the per-pod records.
`DemoCluster.targets()` lists a mix of requests (HTTP 200/301/404, chunked, gzip, slow, big,
DNS A/AAAA/TXT/NXDOMAIN, Redis) for `load.run_load` from the frontend pod.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pilotfish.testbed import services as svc
from pilotfish.testbed.inventory import Inventory, ServiceInfo, ServicePort, inventory_of
from pilotfish.testbed.netns import Pod, Testbed

SHOP = "shop"
SYSTEM = "kube-system"


@dataclass
class DemoCluster:
    testbed: Testbed
    pods: dict[str, Pod]
    services: dict[str, svc.Service]
    cluster_ips: dict[str, str]
    inventory: Inventory
    client: Pod = field(init=False)

    def __post_init__(self) -> None:
        self.client = self.pods["frontend"]

    def targets(self) -> list[str]:
        """A mixed request set for the load generator, mostly through cluster IPs."""
        cart = f"http://{self.cluster_ips['cart-api']}:8080"
        catalog = f"http://{self.cluster_ips['catalog']}"
        dns = f"dns://{self.cluster_ips['kube-dns']}"
        return [
            f"{cart}/api/v1/cart?user=alice",
            f"{catalog}/api/v1/items",
            f"{dns}/catalog.shop.svc.{svc.DNS_DOMAIN}?type=A",
            f"redis://{self.cluster_ips['redis']}:6379/",
            f"{cart}/chunked",
            f"{catalog}/",
            f"{cart}/gzip",
            f"{dns}/api.{svc.DNS_DOMAIN}?type=AAAA",
            f"{catalog}/redirect",
            f"{cart}/slow?ms=20",
            f"{dns}/info.{svc.DNS_DOMAIN}?type=TXT",
            f"{catalog}/missing",
            f"{cart}/api/v1/items",
            f"{dns}/nowhere.example?type=A",
            f"{catalog}/big",
            f"http://{self.pods['cart-api'].ip}:8080/nope",
        ]


def build_demo(testbed: Testbed) -> DemoCluster:
    """Create the pods, service addresses and servers; returns their handles."""
    pods = {
        "frontend": testbed.add_pod("frontend", SHOP, {"app": "frontend", "tier": "web"}),
        "cart-api": testbed.add_pod("cart-api", SHOP, {"app": "cart-api", "tier": "backend"}),
        "catalog": testbed.add_pod("catalog", SHOP, {"app": "catalog", "tier": "backend"}),
        "redis": testbed.add_pod("redis", SHOP, {"app": "redis", "tier": "data"}),
        "dns": testbed.add_pod("dns", SYSTEM, {"k8s-app": "kube-dns"}),
    }
    specs = [
        ("cart-api", SHOP, "cart-api", {"app": "cart-api"}, [ServicePort(8080, name="http")]),
        ("catalog", SHOP, "catalog", {"app": "catalog"}, [ServicePort(80, name="http")]),
        ("redis", SHOP, "redis", {"app": "redis"}, [ServicePort(6379, name="redis")]),
        ("kube-dns", SYSTEM, "dns", {"k8s-app": "kube-dns"}, [ServicePort(53, "UDP", "dns")]),
    ]
    cluster_ips: dict[str, str] = {}
    infos = []
    for name, ns, pod, selector, ports in specs:
        cluster_ips[name] = testbed.add_service_ip(pods[pod])
        infos.append(ServiceInfo(name, ns, cluster_ips[name], selector, ports))
    service_records = [
        f"--host-record={i.name}.{i.namespace}.svc.{svc.DNS_DOMAIN},{i.cluster_ip}" for i in infos
    ]
    handles = {
        "cart-api": svc.start_api(testbed, pods["cart-api"], 8080),
        "catalog": svc.start_nginx(testbed, pods["catalog"], 80),
        "redis": svc.start_redis(testbed, pods["redis"], 6379, also_ips=[cluster_ips["redis"]]),
        "kube-dns": svc.start_dnsmasq(
            testbed, pods["dns"], extra=service_records, also_ips=[cluster_ips["kube-dns"]]
        ),
    }
    return DemoCluster(testbed, pods, handles, cluster_ips, inventory_of(testbed, infos))
