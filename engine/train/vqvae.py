"""Training the VQ-VAE: Adam on reconstruction + spectral + commitment losses, EMA codebooks with restarts.

Gradients reach the encoders through the straight-through estimator; the codebooks are not trained by
gradient but by an exponential moving average of the encoder outputs assigned to them (paper 3.1). As
in the reference, a batch is quantised with the current codebook, then the codebook is updated.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.model.bottleneck import EMACodebookTrainer
from engine.model.losses import vqvae_losses
from engine.model.vqvae import VQVAE


@dataclass(frozen=True)
class TrainConfig:
    lr: float = 3e-4
    grad_clip: float = 100.0
    seed: int = 0


class VQVAETrainer:
    def __init__(self, model: VQVAE, cfg: TrainConfig = TrainConfig()):
        self.model, self.cfg = model, cfg
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.codebooks = [EMACodebookTrainer(book, model.cfg.mu, model.cfg.revival_threshold, self.generator)
                          for book in model.bottleneck.levels]
        self.opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        self.steps = 0

    def warm_start(self) -> None:
        """Train on from the model's current (e.g. shipped) weights and codebooks; the optimiser starts afresh."""
        for ema in self.codebooks:
            ema.warm_start()

    @staticmethod
    def _flat(latents: torch.Tensor) -> torch.Tensor:
        return latents.detach().permute(0, 2, 1).reshape(-1, latents.shape[1])  # (N*T, emb_width)

    def step(self, audio: torch.Tensor) -> dict[str, float]:
        """One optimisation step on a batch of audio (N, T); returns float metrics."""
        self.model.train()
        if self.codebooks[0].k_sum is None:  # the reference initialises each codebook from the first batch's outputs
            with torch.no_grad():
                x = self.model._as_nct(audio)
                for enc, ema in zip(self.model.encoders, self.codebooks):
                    ema.init(self._flat(enc(x)))
        out = self.model(audio)
        losses = vqvae_losses(audio, out.recons, out.commit, self.model.cfg)
        self.opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.opt.step()
        metrics = {k: float(v.detach()) for k, v in losses.items()}
        for level, (ema, latents, codes) in enumerate(zip(self.codebooks, out.latents, out.codes)):
            for name, value in ema.update(self._flat(latents), codes.reshape(-1)).items():
                metrics[f"{name}_l{level + 1}"] = value
        self.steps += 1
        self.model.eval()
        return metrics


LOG_FLOOR = 1e-4  # magnitude floor of the log-spectral loss: about -80 dB of a full-scale sine's bin


def log_spectral_loss(target: torch.Tensor, output: torch.Tensor, cfg) -> torch.Tensor:
    """Mean |log S(target) - log S(output)| over the config's STFT resolutions: every band counts alike, so the
    quiet 4-8 kHz octave weighs as much as the loud bass (the linear spectral loss barely sees it)."""
    from engine.model.losses import stft_magnitude

    losses = [(torch.log(stft_magnitude(target, n, h, w) + LOG_FLOOR) -
               torch.log(stft_magnitude(output, n, h, w) + LOG_FLOOR)).abs().mean()
              for n, h, w in zip(cfg.multispec_n_fft, cfg.multispec_hop, cfg.multispec_win)]
    return sum(losses) / len(losses)


BAND_N_FFT, BAND_HOP = 1024, 256  # band envelopes: 46-ms frames every 12 ms at 22.05 kHz ...
BAND_POOL = 16  # ... pooled over 16 frames (0.19 s, half-overlapped): a few bins per low octave are too noisy alone


def band_envelope_loss(target: torch.Tensor, output: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Mean |log E(target) - log E(output)| of per-frame octave-band energies (the bands the codec report
    measures, ``evaluate.OCTAVE_BANDS``, up to Nyquist), as amplitude (half the log of power). It ignores the
    fine structure and phase a decoder cannot know from its codes, so it asks for the right *energy* in each
    octave: waveform and linear spectral losses pull an unpredictable top octave towards zero, which is why a
    decoder trained on them alone sounds dull."""
    from engine.train.evaluate import OCTAVE_BANDS

    window = torch.hann_window(BAND_N_FFT, device=target.device, dtype=target.dtype)
    freqs = torch.fft.rfftfreq(BAND_N_FFT, 1 / sample_rate).to(target.device)
    bands = torch.stack([((freqs >= lo) & (freqs < hi)).to(target.dtype)
                         for lo, hi in OCTAVE_BANDS if hi <= sample_rate / 2 + 1e-6])  # (B, F)

    def envelope(x: torch.Tensor) -> torch.Tensor:
        power = torch.stft(x, BAND_N_FFT, BAND_HOP, window=window, return_complex=True).abs() ** 2
        energy = torch.nn.functional.avg_pool1d(torch.einsum("bf,nft->nbt", bands, power), BAND_POOL,
                                                BAND_POOL // 2, ceil_mode=True)
        return 0.5 * torch.log(energy + LOG_FLOOR ** 2)

    return (envelope(target) - envelope(output)).abs().mean()


class DecoderTrainer:
    """Fine-tunes one level's decoder on its frozen encoder's codes: the codes, and so every prior trained on them,
    stay valid while the decoder learns what it loses. The loss is the training loss of that level (waveform and
    linear multi-resolution spectra) plus ``log_weight`` times ``log_spectral_loss`` plus ``band_weight`` times
    ``band_envelope_loss``; ``objective`` (the two added terms) picks the best checkpoint."""

    def __init__(self, model: VQVAE, level: int, cfg: TrainConfig = TrainConfig(), log_weight: float = 1.0,
                 band_weight: float = 0.0):
        self.model, self.level, self.cfg, self.log_weight, self.band_weight = model, level, cfg, log_weight, band_weight
        self.opt = torch.optim.Adam(model.decoders[level].parameters(), lr=cfg.lr)
        self.steps = 0

    def reconstruct(self, audio: torch.Tensor) -> torch.Tensor:
        """The level's reconstruction of ``audio`` (N, T), differentiable in the decoder only."""
        with torch.no_grad():
            latents = self.model.encoders[self.level](self.model._as_nct(audio))
            book = self.model.bottleneck.levels[self.level]
            quantised = book.decode(book.encode(latents))
        return self.model.decoders[self.level](quantised)[:, 0, :]

    def step(self, audio: torch.Tensor) -> dict[str, float]:
        from engine.model.losses import multispectral_loss, reconstruction_loss, spectral_convergence

        decoder, c = self.model.decoders[self.level], self.model.cfg
        decoder.train()
        out = self.reconstruct(audio)
        log_loss, band_loss = self._added_losses(audio, out)
        loss = reconstruction_loss(audio, out, c) + c.multispectral * multispectral_loss(audio, out, c) + \
            self.log_weight * log_loss + self.band_weight * band_loss
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(decoder.parameters(), self.cfg.grad_clip)
        self.opt.step()
        decoder.eval()
        self.steps += 1
        with torch.no_grad():
            sc = spectral_convergence(audio, out.detach())
        return {"loss": float(loss.detach()), "log_spectral": float(log_loss.detach()),
                "band": float(band_loss.detach()), "sc": float(sc)}

    def _added_losses(self, target: torch.Tensor, output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log-spectral, band-envelope) distances; the band term is only computed when it is weighted (0 then)."""
        c = self.model.cfg
        band = band_envelope_loss(target, output, c.sample_rate) if self.band_weight else output.new_zeros(())
        return log_spectral_loss(target, output, c), band

    def objective(self, target: torch.Tensor, output: torch.Tensor) -> float:
        """What the fine-tune adds to the level's loss, as one held-out figure: log-spectral distance plus
        ``band_weight`` times the band-envelope distance."""
        log_loss, band_loss = self._added_losses(target, output)
        return float(log_loss + self.band_weight * band_loss)
