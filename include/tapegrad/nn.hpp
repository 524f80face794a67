#pragma once
// The neural-network layer of tapegrad: modules, losses, optimisers, data
// sets and checkpoints, all built on the engine's ops.
#include "tapegrad/nn/checkpoint.hpp"
#include "tapegrad/nn/data.hpp"
#include "tapegrad/nn/loss.hpp"
#include "tapegrad/nn/module.hpp"
#include "tapegrad/nn/optim.hpp"
#include "tapegrad/tapegrad.hpp"
