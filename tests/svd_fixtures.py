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


SVD_SCHEDULER_CONFIG = dict(
    beta_end=0.012, beta_schedule="scaled_linear", beta_start=0.00085, interpolation_type="linear",
    num_train_timesteps=1000, prediction_type="v_prediction", sigma_max=700.0, sigma_min=0.002, steps_offset=1,
    timestep_spacing="leading", timestep_type="continuous", use_karras_sigmas=True)


def make_svd_pipeline_folder(folder, seed: int = 0):
    """Save a complete tiny random StableVideoDiffusionPipeline (real format) into `folder`; return it."""
    from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler, StableVideoDiffusionPipeline
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    unet = make_diffusers_unet("two_levels", seed=seed, cross_attention_dim=32)
    unet.register_to_config(num_frames=4)
    torch.manual_seed(seed)
    vae = AutoencoderKLTemporalDecoder(block_out_channels=(32, 64), in_channels=3, out_channels=3,
                                       down_block_types=("DownEncoderBlock2D",) * 2, latent_channels=4).eval()
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, projection_dim=32, num_hidden_layers=2, num_attention_heads=4, image_size=224,
        intermediate_size=37, patch_size=32)).eval()
    extractor = CLIPImageProcessor(crop_size=224, size=224)
    pipe = StableVideoDiffusionPipeline(vae=vae, image_encoder=encoder, unet=unet,
                                        scheduler=EulerDiscreteScheduler(**SVD_SCHEDULER_CONFIG),
                                        feature_extractor=extractor)
    pipe.save_pretrained(folder)
    return pipe
