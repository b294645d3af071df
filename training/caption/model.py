"""Show, Attend and Tell (Xu et al. 2015): CNN spatial features, soft attention, LSTM decoder."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from contract.beam import Step
from training.backbone import build_image_model, load_backbone_weights

KIND = "captioner"  # the checkpoint kind `python -m training export` dispatches on


@dataclass
class CaptionerConfig:
    """Everything needed to rebuild the network (stored as ``model_args`` in the checkpoint)."""

    vocab_size: int
    arch: str = "resnet18"
    feature_dim: int | None = None  # the encoder's channels; filled in from the architecture
    embed_dim: int = 256
    attention_dim: int = 256
    hidden_dim: int = 512
    dropout: float = 0.5
    feature_layer: str = "layer4"  # where the encoder is cut: a ResNet stage, or an EfficientNet's head


FEATURE_LAYERS = ("layer3", "layer4", "head")


class _ToFeatures(nn.Module):
    """A trunk's output maps [B, D, h, w] -> features [B, L, D], L = h * w (no weights)."""

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return maps.flatten(2).transpose(1, 2)


class ImageEncoder(nn.Module):
    """A CNN cut after ``feature_layer``: images [B, 3, H, W] -> features [B, L, D], L = h * w.

    ResNets: ``layer4`` (stride 32) is the whole body; ``layer3`` (stride 16) has a quarter of the
    weights and a finer attention grid (10 x 10 at 160 px instead of 5 x 5). EfficientNet-Lite: ``head``,
    its last feature map (1,280 channels after the 1x1 head conv, stride 32), without pooling or classifier.
    """

    def __init__(self, arch: str, weights: str | None = None, feature_layer: str = "layer4") -> None:
        super().__init__()
        allowed = ("head",) if arch.startswith("efficientnet") else ("layer3", "layer4")
        if feature_layer not in allowed:
            raise ValueError(
                f"unsupported feature layer {feature_layer!r} for {arch}; supported: {', '.join(allowed)}"
            )
        net = build_image_model(arch, num_classes=1)
        #: where the weights came from (``load_backbone_weights``), for provenance; ``weights`` is what
        #: ``caption --encoder-weights`` gave, the option its error messages name
        self.weights_description = load_backbone_weights(net, weights, option="--encoder-weights")
        children = dict(net.named_children())
        if feature_layer == "head":  # stem, blocks, head conv and its norm+activation, as forward_features
            names = list(children)[: list(children).index("bn2") + 1]
            head = children["conv_head"]
            assert isinstance(head, nn.Conv2d)
            self.out_dim = head.out_channels
        else:
            names = list(children)[: list(children).index(feature_layer) + 1]
            last_norm = [m for m in children[feature_layer].modules() if isinstance(m, nn.BatchNorm2d)][-1]
            self.out_dim = last_norm.num_features
        self.trunk = nn.Sequential(*(children[name] for name in names))
        self.to_features = _ToFeatures()
        # the trunk's modules in order with an EfficientNet's blocks container opened into its stages,
        # and where each stage starts (ResNet: layer1..; EfficientNet: blocks.0..): what split() cuts.
        # A plain list, so the modules are not registered twice (the state dict keeps the trunk's names).
        self._parts: list[nn.Module] = []
        self._stage_starts: list[int] = []
        for name in names:
            stages = list(children[name].children()) if name == "blocks" else [children[name]]
            for module in stages:
                if name == "blocks" or name.startswith("layer"):
                    self._stage_starts.append(len(self._parts))
                self._parts.append(module)

    @property
    def stage_count(self) -> int:
        """How many stages the trunk has (what ``split`` may tune)."""
        return len(self._stage_starts)

    def split(self, tuned_stages: int) -> tuple[nn.Sequential, nn.Sequential]:
        """(front, tail): the trunk cut before its last ``tuned_stages`` stages, the front giving maps, the
        tail turning them into features with those stages and what follows them (an EfficientNet's head
        conv and norm). They share this encoder's modules, so training the tail trains the encoder;
        ``tail(front(pixels))`` equals ``self(pixels)``."""
        if not 1 <= tuned_stages <= self.stage_count:
            raise ValueError(f"tuned_stages must be 1 to {self.stage_count}, got {tuned_stages}")
        cut = self._stage_starts[-tuned_stages]
        return nn.Sequential(*self._parts[:cut]), nn.Sequential(*self._parts[cut:], self.to_features)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.to_features(self.trunk(pixels))


class SoftAttention(nn.Module):
    """Additive attention: alpha = softmax(w . relu(W_f f + W_h h)) over the L positions."""

    def __init__(self, feature_dim: int, hidden_dim: int, attention_dim: int) -> None:
        super().__init__()
        self.feature_proj = nn.Linear(feature_dim, attention_dim)
        self.hidden_proj = nn.Linear(hidden_dim, attention_dim)
        self.score = nn.Linear(attention_dim, 1)

    def forward(
        self, features: torch.Tensor, projected: torch.Tensor, h: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the context [B, D] and the weights [B, L]; ``projected`` is ``feature_proj(features)``."""
        energy = self.score(torch.relu(projected + self.hidden_proj(h).unsqueeze(1))).squeeze(2)
        alpha = torch.softmax(energy, dim=1)
        return (features * alpha.unsqueeze(2)).sum(dim=1), alpha


class AttentionDecoder(nn.Module):
    """LSTMCell decoder attending over the features at every step, with the f_beta gate and dropout."""

    def __init__(self, config: CaptionerConfig) -> None:
        super().__init__()
        c = config
        if c.feature_dim is None:
            raise ValueError("feature_dim must be resolved from the encoder first (Captioner does)")
        self.embedding = nn.Embedding(c.vocab_size, c.embed_dim)
        self.attention = SoftAttention(c.feature_dim, c.hidden_dim, c.attention_dim)
        self.init_h = nn.Linear(c.feature_dim, c.hidden_dim)
        self.init_c = nn.Linear(c.feature_dim, c.hidden_dim)
        self.f_beta = nn.Linear(c.hidden_dim, c.feature_dim)
        self.lstm = nn.LSTMCell(c.embed_dim + c.feature_dim, c.hidden_dim)
        self.dropout = nn.Dropout(c.dropout)
        self.fc = nn.Linear(c.hidden_dim, c.vocab_size)

    def init_state(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Initial (h, c) from the mean feature vector."""
        mean = features.mean(dim=1)
        return self.init_h(mean), self.init_c(mean)

    def _step(
        self,
        tokens: torch.Tensor,
        h: torch.Tensor,
        c: torch.Tensor,
        features: torch.Tensor,
        projected: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        context, alpha = self.attention(features, projected, h)
        context = torch.sigmoid(self.f_beta(h)) * context
        h, c = self.lstm(torch.cat([self.embedding(tokens), context], dim=1), (h, c))
        return h, c, alpha

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """The attention's projection of the features [B, L, D] -> [B, L, A]: once per image, not per
        step (the exported encoder graph computes it)."""
        return self.attention.feature_proj(features)

    def step(
        self,
        tokens: torch.Tensor,
        h: torch.Tensor,
        c: torch.Tensor,
        features: torch.Tensor,
        projected: torch.Tensor,
        image_index: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One decoding step (the exported decoder graph) for rows of (token, state) [R], whose images'
        ``features`` [B, L, D] and ``projected`` [B, L, A] are given once per image and picked per row by
        ``image_index`` [R]: log-probs [R, V], h, c, alpha [R, L]."""
        h, c, alpha = self._step(tokens, h, c, features[image_index], projected[image_index])
        return torch.log_softmax(self.fc(self.dropout(h)), dim=1), h, c, alpha

    def forward(
        self, features: torch.Tensor, captions: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing over ``captions`` [B, T] (``<start>`` ... ``<end>``, padded), lengths [B].

        Returns logits [B, T - 1, V] predicting ``captions[:, 1:]`` and attention weights [B, T - 1, L]
        (zero past a caption's end). Rows drop out as their captions end, hence the sort by length; the
        output layer runs once over all steps.
        """
        order = torch.argsort(lengths, descending=True)
        features, captions, steps = features[order], captions[order], lengths[order] - 1
        h, c = self.init_state(features)
        projected = self.attention.feature_proj(features)
        hiddens, alphas = [], []
        for t in range(int(steps[0])):
            n = int((steps > t).sum())
            h, c, alpha = self._step(captions[:n, t], h[:n], c[:n], features[:n], projected[:n])
            hiddens.append(h)
            alphas.append(alpha)
        inverse = torch.argsort(order)
        hidden = nn.utils.rnn.pad_sequence(hiddens)[inverse]  # [B, T - 1, H]
        return self.fc(self.dropout(hidden)), nn.utils.rnn.pad_sequence(alphas)[inverse]


class Captioner(nn.Module):
    """Encoder + decoder; :meth:`encode` is the exported encoder graph (features, h0, c0)."""

    def __init__(self, config: CaptionerConfig, encoder_weights: str | None = None) -> None:
        super().__init__()
        self.encoder = ImageEncoder(config.arch, encoder_weights, config.feature_layer)
        if config.feature_dim not in (None, self.encoder.out_dim):
            raise ValueError(
                f"{config.arch} {config.feature_layer} gives {self.encoder.out_dim}-d features, "
                "config says "
                f"feature_dim={config.feature_dim}"
            )
        self.config = replace(config, feature_dim=self.encoder.out_dim)
        self.decoder = AttentionDecoder(self.config)

    def encode(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Images [B, 3, H, W] -> features [B, L, D], h0 [B, H], c0 [B, H]."""
        features = self.encoder(pixels)
        h0, c0 = self.decoder.init_state(features)
        return features, h0, c0


def numpy_step(decoder: AttentionDecoder, device: torch.device, features: np.ndarray | torch.Tensor) -> Step:
    """Wrap :meth:`AttentionDecoder.step` as the numpy step function ``contract.beam`` calls,
    for the batch of images whose encoder ``features`` [B, L, D] are given (projected once, here)."""
    with torch.no_grad():
        image_features = torch.as_tensor(features).float().to(device)
        projected = decoder.project(image_features)

    @torch.no_grad()
    def step(
        tokens: np.ndarray, h: np.ndarray, c: np.ndarray, images: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        t, h_in, c_in, index = (
            torch.from_numpy(np.ascontiguousarray(x)).to(device) for x in (tokens, h, c, images)
        )
        log_probs, h_out, c_out, _ = decoder.step(t, h_in, c_in, image_features, projected, index)
        return log_probs.cpu().numpy(), h_out.cpu().numpy(), c_out.cpu().numpy()

    return step
