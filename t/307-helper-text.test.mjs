// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// Text from patterns is data in tidal-helper --stdio: its stderr keeps a
// pattern's newlines on one line, and events keep 4 KB of GHCi's longer
// messages while the caller gets all of it (t/lib/text-tests.mjs; t/415
// runs them through nginx).

import { Helper, SKIP } from './lib/helper.mjs';
import { textTests } from './lib/text-tests.mjs';

textTests({ start: () => Helper.start({ name: 'text-test' }), skip: SKIP });
