"""VQ-VAE training losses (paper section 3.1 and appendix B): reconstruction, multi-resolution spectral.

STFTs follow the reference: periodic Hann window of ``win`` samples centred in ``n_fft``, reflect
padding, magnitude of the complex STFT. Audio is (N, T).
"""

from __future__ import annotations

import torch

from .config import VQVAEConfig


def stft_magnitude(x: torch.Tensor, n_fft: int, hop: int, win: int) -> torch.Tensor:
    """(N, T) -> (N, n_fft // 2 + 1, frames) magnitudes."""
    window = torch.hann_window(win, device=x.device, dtype=x.dtype)
    return torch.stft(x, n_fft, hop, win_length=win, window=window, return_complex=True).abs()


def _frobenius(x: torch.Tensor) -> torch.Tensor:
    """Per-example L2 norm over all but the batch axis: (N, ...) -> (N,)."""
    return (x.reshape(x.shape[0], -1) ** 2).sum(dim=-1).sqrt()


def spectral_loss(target: torch.Tensor, output: torch.Tensor, n_fft: int = 2048, hop: int = 256, win: int = 1536) -> torch.Tensor:
    """Mean over the batch of ||S(target) - S(output)||_F at one resolution."""
    return _frobenius(stft_magnitude(target, n_fft, hop, win) - stft_magnitude(output, n_fft, hop, win)).mean()


def multispectral_loss(target: torch.Tensor, output: torch.Tensor, cfg: VQVAEConfig) -> torch.Tensor:
    """Spectral loss averaged over the config's (n_fft, hop, window) resolutions."""
    losses = [spectral_loss(target, output, n, h, w)
              for n, h, w in zip(cfg.multispec_n_fft, cfg.multispec_hop, cfg.multispec_win)]
    return sum(losses) / len(losses)


def spectral_convergence(target: torch.Tensor, output: torch.Tensor, epsilon: float = 2e-3) -> torch.Tensor:
    """||S(t) - S(o)|| / ||S(t)|| (n_fft 2048, hop 256, window 1536), masked where the target is silent."""
    s_t, s_o = stft_magnitude(target, 2048, 256, 1536), stft_magnitude(output, 2048, 256, 1536)
    gt_norm = _frobenius(s_t)
    mask = (gt_norm > epsilon).float()
    return (_frobenius(s_t - s_o) * mask / torch.clamp(gt_norm, min=epsilon)).mean()


def reconstruction_loss(target: torch.Tensor, output: torch.Tensor, cfg: VQVAEConfig, l2_scale: float = 1.0) -> torch.Tensor:
    """'lmix': lmix_l2 * MSE + lmix_linf * mean of the top ``linf_k`` squared errors per example."""
    sq = ((output - target) ** 2).reshape(target.shape[0], -1)
    linf = torch.topk(sq, min(cfg.linf_k, sq.shape[1]), dim=1).values.mean()
    return (cfg.lmix_l2 * sq.mean() + cfg.lmix_linf * linf) / l2_scale


def vqvae_losses(audio: torch.Tensor, recons: list[torch.Tensor], commit: list[torch.Tensor], cfg: VQVAEConfig,
                 bandwidth: dict[str, float] | None = None) -> dict[str, torch.Tensor]:
    """All per-level and total losses, named as the reference names its metrics (suffix = level + 1).

    ``bandwidth`` holds the dataset statistics the reference divides by (l2 variance, spectrogram norm);
    None means 1 (raw losses).
    """
    bw = bandwidth or {"l2": 1.0, "spec": 1.0}
    metrics: dict[str, torch.Tensor] = {}
    recons_total = multispec_total = torch.zeros((), device=audio.device)
    for level in reversed(range(len(recons))):
        rec = reconstruction_loss(audio, recons[level], cfg, bw["l2"])
        ms = multispectral_loss(audio, recons[level], cfg) / bw["spec"]
        metrics[f"recons_loss_l{level + 1}"] = rec
        metrics[f"multispectral_loss_l{level + 1}"] = ms
        recons_total, multispec_total = recons_total + rec, multispec_total + ms
    commit_total = sum(commit)
    metrics.update(recons_loss=recons_total, multispectral_loss=multispec_total, commit_loss=commit_total,
                   loss=recons_total + cfg.multispectral * multispec_total + cfg.commit * commit_total)
    with torch.no_grad():
        metrics["spectral_convergence"] = spectral_convergence(audio, recons[0])
        metrics["l2_loss"] = ((recons[0] - audio) ** 2).mean() / bw["l2"]
    return metrics
