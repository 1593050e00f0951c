"""vLLM's ``PyNcclCommunicator`` over gloo: OpenRLHF's weight sync (DeepSpeed rank 0 -> engines).

OpenRLHF 0.11.2 builds this group whatever ``--vllm.sync_backend`` says
(openrlhf/utils/distributed_util.py: stateless_init_process_group); on CPU the transport is gloo.
"""

import torch
import torch.distributed as dist


class PyNcclCommunicator:
    def __init__(self, group, device=None):
        self.rank, self.world_size, self.device = group.rank, group.world_size, device
        self._pg = dist.ProcessGroupGloo(group.store, group.rank, group.world_size)

    def broadcast(self, tensor: torch.Tensor, src: int, stream=None) -> None:
        options = dist.BroadcastOptions()
        options.rootRank = src
        buffer = tensor.data if tensor.is_contiguous() else tensor.data.contiguous()
        self._pg.broadcast([buffer], options).wait()
        if buffer is not tensor.data:
            tensor.data.copy_(buffer)
