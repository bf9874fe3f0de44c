"""Whose turn it is on the GPUs. Verifications share them (the pool gives each GPU one worker, so they never meet
on a GPU); a probe (problem_info's timing of the reference, a profile) runs beside the pool on the first GPU, so it
has the GPUs alone: a verification timed while a probe runs, or a probe timed during a verification, would report
the other's load, and the verifier's memory plan would not see the probe's tensors. On the CPU nothing is timed
against anything, and every turn is free."""
from __future__ import annotations

from contextlib import asynccontextmanager

import anyio


class GpuTurns:
    def __init__(self, on_gpu: bool):
        self.on_gpu = on_gpu
        self.changed = anyio.Condition()
        self.sharing = 0  # verifications under way
        self.alone = False  # a probe under way
        self.waiting_alone = 0  # probes waiting: verifications that come later wait behind them (no starving)

    @asynccontextmanager
    async def shared(self):
        if not self.on_gpu:
            yield
            return
        async with self.changed:
            while self.alone or self.waiting_alone:
                await self.changed.wait()
            self.sharing += 1
        try:
            yield
        finally:
            await self._release(sharing=True)

    @asynccontextmanager
    async def exclusive(self):
        if not self.on_gpu:
            yield
            return
        async with self.changed:
            self.waiting_alone += 1
            try:
                while self.alone or self.sharing:
                    await self.changed.wait()
            finally:
                self.waiting_alone -= 1
                self.changed.notify_all()  # a cancelled wait must not keep verifications waiting behind it
            self.alone = True
        try:
            yield
        finally:
            await self._release(sharing=False)

    async def _release(self, sharing: bool) -> None:
        with anyio.CancelScope(shield=True):  # a call cancelled or out of time still gives its turn back
            async with self.changed:
                if sharing:
                    self.sharing -= 1
                else:
                    self.alone = False
                self.changed.notify_all()
