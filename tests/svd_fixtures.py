"""Tiny random diffusers-format SVD components, saved in the real on-disk format, for parity tests."""
import torch

TINY_UNET_CONFIGS = {
    # SVD's own layout (cross-attn levels + a plain coarsest level), narrow.
    "two_levels": dict(block_out_channels=(32, 64), layers_per_block=2, num_attention_heads=(2, 4),
                       down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
                       up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal")),
    # Three levels, one layer each, two transformer layers per block, several heads.
    "three_levels_deep": dict(block_out_channels=(32, 32, 64), layers_per_block=1, num_attention_heads=(1, 2, 4),
                              transformer_layers_per_block=2,
                              down_block_types=("CrossAttnDownBlockSpatioTemporal",) * 2 + ("DownBlockSpatioTemporal",),
                              up_block_types=("UpBlockSpatioTemporal",) + ("CrossAttnUpBlockSpatioTemporal",) * 2),
    # Attention at every level.
    "all_attention": dict(block_out_channels=(32, 64), layers_per_block=1, num_attention_heads=2,
                          down_block_types=("CrossAttnDownBlockSpatioTemporal",) * 2,
                          up_block_types=("CrossAttnUpBlockSpatioTemporal",) * 2),
}


def make_diffusers_unet(name: str = "two_levels", seed: int = 0, cross_attention_dim: int = 32):
    """A diffusers UNetSpatioTemporalConditionModel with every parameter perturbed away from its init.

    Perturbing matters: at init every mix factor is 0.5 and some projections are symmetric, which would hide
    a swapped spatial/temporal blend or a transposed weight.
    """
    from diffusers import UNetSpatioTemporalConditionModel

    torch.manual_seed(seed)
    model = UNetSpatioTemporalConditionModel(
        in_channels=8, out_channels=4, cross_attention_dim=cross_attention_dim, addition_time_embed_dim=16,
        projection_class_embeddings_input_dim=48, **TINY_UNET_CONFIGS[name])
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def unet_inputs(batch=2, frames=3, height=16, width=16, context_dim=32, seed=1):
    g = torch.Generator().manual_seed(seed)
    return dict(sample=torch.randn(batch, frames, 8, height, width, generator=g),
                timestep=torch.randn(batch, generator=g),
                encoder_hidden_states=torch.randn(batch, 1, context_dim, generator=g),
                added_time_ids=torch.randn(batch, 3, generator=g) * 10)
