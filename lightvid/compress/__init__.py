"""Model-to-model compression of a SpaceTimeUNet (MobileVD): fold single-token cross-attention, temporal (and
spatial) multiscaling, temporal-block pruning with learned gates, channel funnels; `recipe` chains them with
finetuning, `mobilevd_table` reproduces MobileVD's Table 2 FLOPs from architectures alone."""
from lightvid.models.fold import fold_cross_attention

from .funnels import FUNNEL_INITS, add_funnels, merge_funnels
from .multiscale import add_multiscale
from .prune import add_temporal_gates, prune_temporal_blocks

__all__ = ["FUNNEL_INITS", "add_funnels", "add_multiscale", "add_temporal_gates", "fold_cross_attention",
           "merge_funnels", "prune_temporal_blocks"]
