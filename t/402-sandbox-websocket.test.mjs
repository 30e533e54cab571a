// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// The sandbox cases of t/302 through nginx: a performer's pattern reaches
// the helper through a worker and is refused or played exactly as over
// stdio; GHCi runs as nginx's worker user, so an escape would write the
// file just the same.

import { Room } from './lib/room.mjs';
import { sandboxTests } from './lib/sandbox-tests.mjs';

sandboxTests({ start: () => Room.start({ name: 'ws-sandbox-test' }) });
