// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// Issue 7 over stdio: one performer's pattern never silences another's
// (the cases are t/lib/supervision-tests.mjs; t/418 runs representative
// ones through nginx).

import { Helper, SKIP } from './lib/helper.mjs';
import { supervisionTests } from './lib/supervision-tests.mjs';

supervisionTests({
    start: ({ evalTimeout, boot } = {}) => Helper.start({
        args: [
            ...(evalTimeout ? ['--eval-timeout', String(evalTimeout)] : []),
            ...(boot ? ['--boot', boot] : []),
        ],
    }),
    skip: SKIP,
});
