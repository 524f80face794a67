#pragma once
// The neural-network layer of tapegrad: modules, losses, optimisers, data
// sets, checkpoints and the training loop, all built on the engine's ops.
// (It uses the core and the ops only; inspection is tapegrad/inspect.hpp.)
#include "tapegrad/nn/checkpoint.hpp"
#include "tapegrad/nn/data.hpp"
#include "tapegrad/nn/loss.hpp"
#include "tapegrad/nn/module.hpp"
#include "tapegrad/nn/optim.hpp"
#include "tapegrad/nn/trainer.hpp"
