#pragma once
#include "sagaflow/replay/participants.hpp"
