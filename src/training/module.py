"""One LightningModule for every architecture: cross-entropy, accuracy, optimizer and scheduler
from the config, and the extension points where regularizers plug in.

Regularizers are objects that follow a small protocol (see `src/training/regularizers.py`); this module
sums their penalties and calls their step hooks without knowing any of them by name.

The data gradient and the penalty's are kept apart: `training_step` returns the data loss alone, so
after backward `p.grad` is exactly the data gradient, which callbacks (the gradient-health monitor)
read at their `on_before_optimizer_step`; this module's `on_before_optimizer_step`, which Lightning
calls right after theirs and before clipping and the optimizer step, then adds the penalty's
gradient (`src/training/penalty_gradient.py`). What monitors may read, on the device:
`window_loss` (the data loss of the coming optimizer step: the mean over its accumulated
micro-batches), `penalty_grad_norms` (the penalty gradient's norm per trainable parameter, set at
this module's `on_before_optimizer_step`), `num_classes`, `net` and `penalty()`: together the
`src.monitor.monitored.Monitored` protocol, which the monitor checks at `setup` (a rename fails loudly).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from src.amp import grad_scaler
from src.training.penalty_gradient import add_penalty_gradient, step_gate
from src.training.weight_stats import weight_statistics

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]
ACCURACY_BATCHES = 32  # training batches whose predictions go into `train_acc` in one update (`_count_correct`)


class ClassificationModule(pl.LightningModule):
    """Trains `net` with cross-entropy; logs `{stage}/loss` and `{stage}/acc`.

    Args:
        net: any `nn.Module` mapping images to class logits.
        optimizer: a partial (`_partial_: true`) that takes the parameter groups.
        scheduler: a partial that takes the optimizer, or None.
        num_classes: for the accuracy metric.
        regularizers: objects with `penalty(net)`, `penalty_gradient(net)`, `before_step(net, optimizer, gate)`,
            `after_step(net, optimizer, gate)` and `penalized(net)` (see `src/training/regularizers.py`).
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        num_classes: int = 10,
        regularizers: Sequence[Any] = (),
    ) -> None:
        super().__init__()
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.regularizers = list(regularizers)
        self.num_classes = num_classes
        # updated every step: no argument checks (cross-entropy has checked the labels; torch.unique would sync a GPU)
        self.train_acc = MulticlassAccuracy(num_classes=num_classes, average="micro", validate_args=False)
        self._train_predictions: list[tuple[Tensor, Tensor]] = []  # (argmax, labels) not yet in train_acc (device)
        self.val_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")
        self.last_loss: Tensor | None = None  # data loss of the latest training step (device scalar)
        self.last_penalty: Tensor | None = None  # its penalty (None when no regularizer adds one)
        self.penalty_grad_norms: Tensor | None = None  # per trainable parameter, of the latest optimizer step
        self.last_penalty_terms: dict[str, Tensor] = {}  # each regularizer's penalty of the latest step
        self._penalty_grad_parts: dict[str, Tensor] | None = None  # each one's gradient norm, on logging steps
        self._window: list[Tensor] = []  # data losses of the micro-batches since the last optimizer step
        self._loss_sum: Tensor | None = None  # Σ data loss of the batches since the last logged step (device)
        self._objective_sum: Tensor | None = None  # Σ data loss + penalty of the same batches (device)
        self._batches_since_logged = 0
        self._gate: Tensor | None = None  # 0/1 on the device: does the grad scaler step this time
        self._weights_logged_at = -1  # optimizer step whose weight statistics were last logged

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def penalty(self) -> Tensor | None:
        """Sum of the selected regularizers' penalties (None when no regularizer adds one)."""
        terms = list(self.penalty_terms().values())
        return torch.stack(terms).sum() if terms else None

    def penalty_terms(self) -> dict[str, Tensor]:
        """Each selected regularizer's penalty by its name (`l2`), those that add one."""
        terms = {r.name: r.penalty(self.net) for r in self.regularizers}
        return {name: term for name, term in terms.items() if term is not None}

    @property
    def window_loss(self) -> Tensor | None:
        """The data loss of the coming optimizer step: the mean over its micro-batches (device scalar)."""
        if not self._window:
            return None
        return self._window[0] if len(self._window) == 1 else torch.stack(self._window).mean()

    def data_loss(self, logits: Tensor, y: Tensor, reduction: str = "mean") -> Tensor:
        """The data loss (cross-entropy, nats); `reduction="none"`: one per example (forensics' replay)."""
        return F.cross_entropy(logits, y, reduction=reduction)

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        """The data loss alone: the penalty's gradient joins `p.grad` in `on_before_optimizer_step`."""
        x, y = batch[:2]  # (images, labels, example indices): src/training/data/examples.py
        logits = self(x)
        loss = self.data_loss(logits, y)
        self.last_loss = loss.detach()
        self._window.append(self.last_loss)
        self._count_correct(logits.detach(), y)  # train/acc: logged once per epoch (on_train_epoch_end)
        with torch.no_grad():
            self.last_penalty_terms = self.penalty_terms()
        terms = list(self.last_penalty_terms.values())
        self.last_penalty = torch.stack(terms).sum() if terms else None  # logged at the cadence (on_train_batch_end)
        self._accumulate_window(self.last_loss, self.last_penalty)
        return loss

    def _accumulate_window(self, loss: Tensor, penalty: Tensor | None) -> None:
        """Sum, on the device, the data loss and the objective (data + penalty) of every batch until the next
        logged step: `train/loss_avg` and `train/objective_avg` are then the exact means over the steps between
        two logged steps (the blog post's "average loss"), not the one batch that `train/loss` samples."""
        loss = loss.float()
        objective = loss if penalty is None else loss + penalty
        first = self._loss_sum is None
        self._loss_sum = loss if first else self._loss_sum + loss
        self._objective_sum = objective if first else self._objective_sum + objective
        self._batches_since_logged += 1

    def _count_correct(self, logits: Tensor, y: Tensor) -> None:
        """Keep this batch's predicted classes for `train_acc`, which takes them `ACCURACY_BATCHES` batches at a time.

        `MulticlassAccuracy.update` costs ~0.1 ms of host time per call (torchmetrics' wrapper and input
        formatting), 2-3% of a LeNet-5 step; the argmax it would take is one op. Micro accuracy is a count of
        correct predictions over a count of examples, so one update with the concatenated batches gives exactly
        the counts of one update per batch; the buffer stays on the device (no host read) and holds at most
        `ACCURACY_BATCHES` batches of labels."""
        self._train_predictions.append((logits.argmax(dim=1), y))
        if len(self._train_predictions) >= ACCURACY_BATCHES:
            self._update_train_accuracy()

    def _update_train_accuracy(self) -> None:
        if self._train_predictions:
            predicted, labels = zip(*self._train_predictions, strict=True)
            self._train_predictions = []
            self.train_acc.update(torch.cat(predicted), torch.cat(labels))

    def on_train_epoch_end(self) -> None:
        self._update_train_accuracy()  # every batch of the epoch counted before train_acc is computed
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True)

    def _eval_step(self, batch: tuple[Tensor, ...], stage: str, metric: MulticlassAccuracy) -> None:
        x, y = batch[:2]
        logits = self(x)
        metric.update(logits, y)  # only the epoch's value is logged: no batch value (forward: ~4x dearer)
        self.log(f"{stage}/loss", F.cross_entropy(logits, y), on_epoch=True, prog_bar=stage == "val")
        self.log(f"{stage}/acc", metric, on_epoch=True, prog_bar=stage == "val")

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "val", self.val_acc)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "test", self.test_acc)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """After backward and the callbacks' hook, before clipping and the update: the penalty's gradient
        joins `p.grad` (once per optimizer step), then decoupled weight decay acts (AdamW's order).

        With a grad scaler, the step hooks get a 0/1 device gate that is 0 when the scaler will skip
        this step (Inf/NaN in the unscaled data gradients), so they skip it too, without a host sync.
        """
        self._window = []
        with torch.no_grad():
            stepping = any(getattr(reg, "steps_weights", False) for reg in self.regularizers)
            self._gate = step_gate(self.net) if stepping and grad_scaler(self.trainer) is not None else None
            logs = (self.trainer.global_step + 1) % self.trainer.log_every_n_steps == 0
            self._penalty_grad_parts = {} if logs else None  # each term's norm, on the steps that log
            self.penalty_grad_norms = add_penalty_gradient(self.net, self.regularizers, self._penalty_grad_parts)
            for reg in self.regularizers:
                reg.before_step(self.net, optimizer, self._gate)

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        optimizer = self.optimizers(use_pl_optimizer=False)
        with torch.no_grad():
            for reg in self.regularizers:
                reg.after_step(self.net, optimizer, self._gate)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """The step metrics, on the steps that reach the logger: `train/loss`, `train/penalty` (of this
        step's batch, before the update), `train/loss_avg` and `train/objective_avg` (means, in nats, over every
        batch since the previous logged step) and `reg/weight_norm`, `reg/sparsity`, `reg/small_fraction` (of the
        updated weights).

        Lightning sends step metrics every `log_every_n_steps` optimizer steps (and when training
        stops); only then are they worth logging (each `self.log` call walks Lightning's result collection).
        They are handed over as host tensors, copied once here, so that the progress bar, which reads
        them after every batch, never waits for a GPU. A batch that only accumulated gradients made no
        update, so it has nothing new to report.

        Their MLflow step is logged explicitly (`step`, Lightning's documented override): the index of this
        batch's update (0 = first), the monitor's step. Lightning's own counter (`_batches_that_stepped`)
        comes back one ahead after a resume from a checkpoint saved at a batch's start (a clean stop),
        which would leave a gap in every step metric.
        """
        trainer = self.trainer
        step = trainer.global_step  # optimizer steps done, this batch's included
        if step == self._weights_logged_at or (step % trainer.log_every_n_steps and not trainer.should_stop):
            return
        self._weights_logged_at = step
        self.log("step", float(step - 1), on_step=True, on_epoch=False)
        if self.last_loss is not None:
            self.log("train/loss", self.last_loss.cpu(), on_step=True, on_epoch=False, prog_bar=True)
        if self._loss_sum is not None:
            loss_sum, objective_sum = torch.stack([self._loss_sum, self._objective_sum]).cpu().tolist()
            batches, self._loss_sum, self._objective_sum, self._batches_since_logged = \
                self._batches_since_logged, None, None, 0
            self.log("train/loss_avg", loss_sum / batches, on_step=True, on_epoch=False)
            self.log("train/objective_avg", objective_sum / batches, on_step=True, on_epoch=False)
        if self.last_penalty is not None:
            self.log("train/penalty", self.last_penalty.cpu(), on_step=True, on_epoch=False)
            for name, value in self.last_penalty_terms.items():  # each regularizer's share of the total
                self.log(f"train/penalty/{name}", value.cpu(), on_step=True, on_epoch=False)
        for name, value in (self._penalty_grad_parts or {}).items():
            self.log(f"grad_penalty/{name}/global_norm", value.cpu(), on_step=True, on_epoch=False)
        for name, value in weight_statistics(self.net, self.regularizers).items():
            self.log(name, value, on_step=True, on_epoch=False)

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(params=self.net.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        interval = getattr(self.scheduler_factory, "interval", "epoch")  # src/training/schedules.py
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": interval}}
