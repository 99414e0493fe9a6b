// Fixed P-256 keys for the fuzz targets and their seed corpora. TEST ONLY: these private keys are
// public; they sign nothing but fuzz seeds. Order: root1 root2 root3 image1 image2 director1
// director2 director3 attacker ecu (see tests/trust/fixture.hpp).
#pragma once

namespace ota_fuzz {

inline const char* const kFuzzKeyPems[10] = {
    "-----BEGIN EC PRIVATE KEY-----\n"
    "MHcCAQEEINOBkLk1g/MJzzT+T43GnffKdrIJvf2XNdCZfDzcOifPoAoGCCqGSM49\n"
    "AwEHoUQDQgAEbvWNTEC7EC8tqYoSUt2EMxAfTDKOc+lDkvNp3XhpoeNX+wZ6p2JZ\n"
    "NeoNLx/cQoQdxGEw/HBZ/ZrydKtoSvJOdg==\n"
    "-----END EC PRIVATE KEY-----\n",
    "-----BEGIN EC PRIVATE KEY-----\n"
    "MHcCAQEEIIPwWSLjYivdpTwfeNEMBbANRRY6r2HB4LyMip9zgkqQoAoGCCqGSM49\n"
    "AwEHoUQDQgAE9IdtTRT8NwnIepGIVMwQ+84pGsOGy7ffh39uhetjSOdnls6VMzQQ\n"
    "UMQaLMuvXsBZAI3yQ4/XJ/LANuP3RWJVkA==\n"
    "-----END EC PRIVATE KEY-----\n",
    "-----BEGIN EC PRIVATE KEY-----\n"
    "MHcCAQEEIPJedxnOnebWCrIaOBM9B+hiZ+tQ0MRj5P23qT5C53E8oAoGCCqGSM49\n"
    "AwEHoUQDQgAEgiOgKlQM4pSZFirPPRGq2ifeabBw38yUOTNqFuUkKSOWGaLqe7z9\n"
    "eavj7w0pGosAJm6y6MUS3KvUD2aL3AKZFA==\n"
    "-----END EC PRIVATE KEY-----\n",
    "-----BEGIN EC PRIVATE KEY-----\n"
    "MHcCAQEEIHLOnM2ZdKb8Se+1xvhEe+HnIDtnmKhWPb8PRs3dfyQroAoGCCqGSM49\n"
    "AwEHoUQDQgAEPPWzED5eLgEcb7R8Mi6OEb0un90gZcjknEUXV+G6kBZIIadhtd78\n"
    "4g0gbqs6H/DPuik11yaWmV2r2cAa+1UzdQ==\n"
    "-----END EC PRIVATE KEY-----\n",
    "-----BEGIN EC PRIVATE KEY-----\n"
    "MHcCAQEEIDMGecfqxit0Af0TUnHr6V/U4AbDAP4RPtrh2Wd4IaYYoAoGCCqGSM49\n"
    "AwEHoUQDQgAEuToau0IicfBwnJKHt6EA/CPg8ecBxvlzekhp7Gnpgg0YXbKVA2Jg\n"
    "iCOVgJv517QTlwV3mtLyNXZ05CpDusDzcA==\n"
    "-----END EC PRIVATE KEY-----\n",
    "-----BEGIN EC PRIVATE KEY-----\n"
    "MHcCAQEEIK60b5P+RZ4XGQ5C9t/iLHzBcQ2zD/fG2U+EI1vYsG4voAoGCCqGSM49\n"
    "AwEHoUQDQgAEwo0SrxmZ4fbFV3fmHfa9pKssiDMxwSJK9eQMdpuPqK2ZnBfaB62T\n"
    "fv7KyzwaL4SU0SCzAVKjoXS5iNe7dIqenQ==\n"
    "-----END EC PRIVATE KEY-----\n",
    "-----BEGIN EC PRIVATE KEY-----\n"
    "MHcCAQEEIClwBTPEQDpTh85H8Tk8zUQwCaRhg5JF39QQgwHRIeyGoAoGCCqGSM49\n"
    "AwEHoUQDQgAEmZWSEqyMSJh5E4aUqPhsWLVa+xZVoytOkn/0983SjdfDL8tIPpVj\n"
    "q96eZUGlk4S/5H53sFt4S6+nsgH2m3a2XQ==\n"
    "-----END EC PRIVATE KEY-----\n",
    "-----BEGIN EC PRIVATE KEY-----\n"
    "MHcCAQEEIG0xdwm58k8oeuUqpJ84iHUeoxEYFrnd9ZmoH9VjU5wAoAoGCCqGSM49\n"
    "AwEHoUQDQgAEZ4w5+5/Np5KIL/aZu5YRwxsriO4A7Xyh/V8p2SV5sIkghO4nS/D+\n"
    "f4YGBliFfh+hVrt/VAfPtnyYb4YdVw8kNA==\n"
    "-----END EC PRIVATE KEY-----\n",
    "-----BEGIN EC PRIVATE KEY-----\n"
    "MHcCAQEEIHLibisE/M2bz98k5WorQdhCWQVTadX84Ud5m9LXl23PoAoGCCqGSM49\n"
    "AwEHoUQDQgAE2ntcKlwh3zm4JLpMhh7HIOssW5ijamGe2xVNZcg19SbYVJuWFpeb\n"
    "y5D+510lWpB0+1B5veGpZVt8THPj4pTcbQ==\n"
    "-----END EC PRIVATE KEY-----\n",
    "-----BEGIN EC PRIVATE KEY-----\n"
    "MHcCAQEEIEdGJ/z15ycJKK8DRq5/a7wbzmCSlgRdxuUHZTwgYEutoAoGCCqGSM49\n"
    "AwEHoUQDQgAEKFnum1eVFsVpAkh2fUGXN4W5O/gHCazaVH+CKYNM1g5gRX9GD3nW\n"
    "yNiPDWfrKhb3Cqm8fsDwE91UEUQamxgnJw==\n"
    "-----END EC PRIVATE KEY-----\n",
};

}  // namespace ota_fuzz
