"""vLLM's ``StatelessProcessGroup``: a group of its own, outside torch.distributed's default one."""

import datetime
from dataclasses import dataclass

import torch.distributed as dist


@dataclass
class StatelessProcessGroup:
    rank: int
    world_size: int
    store: "dist.Store"

    @staticmethod
    def create(host: str, port: int, rank: int, world_size: int, store_timeout: int = 300) -> "StatelessProcessGroup":
        # Rank 0 hosts the store; the others wait for it (OpenRLHF starts the engines' side first).
        store = dist.TCPStore(
            host, port, world_size, is_master=rank == 0, timeout=datetime.timedelta(seconds=store_timeout)
        )
        return StatelessProcessGroup(rank, world_size, store)
