"""The rule table: every rule, in code order. This list is the single table of codes.

``JX001`` (a file that does not parse) is reported by the engine itself.
"""

from __future__ import annotations

from flaxify.lint.rule import Rule
from flaxify.lint.rules.assert_on_traced import AssertOnTracedValue
from flaxify.lint.rules.bool_op_on_traced import BoolOpOnTracedValue
from flaxify.lint.rules.boolean_mask import BooleanMaskOnTracedValue
from flaxify.lint.rules.concrete_conversion import ConcreteConversionOfTracedValue
from flaxify.lint.rules.control_flow_on_traced import ControlFlowOnTracedValue
from flaxify.lint.rules.debug_print_fstring import DebugPrintFString
from flaxify.lint.rules.fixed_key_in_module import FixedKeyInModule
from flaxify.lint.rules.float64_without_x64 import Float64WithoutX64
from flaxify.lint.rules.global_write import GlobalWriteInTracedCode
from flaxify.lint.rules.haiku_import import HaikuImport
from flaxify.lint.rules.haiku_outside_transform import HaikuOutsideTransform
from flaxify.lint.rules.haiku_raw_transform import HaikuUnderRawJaxTransform
from flaxify.lint.rules.host_randomness import HostRandomnessInTracedCode
from flaxify.lint.rules.host_side_effect import HostSideEffectInTracedCode
from flaxify.lint.rules.inplace_update import InplaceUpdateOfArray
from flaxify.lint.rules.item_tolist import ItemOnTracedValue
from flaxify.lint.rules.iterator_in_traced import IteratorConsumedInTracedCode
from flaxify.lint.rules.jit_in_loop import JitInLoop
from flaxify.lint.rules.jit_method_self import JitMethodWithoutStaticSelf
from flaxify.lint.rules.linen_apply_without_mutable import LinenApplyWithoutMutable
from flaxify.lint.rules.linen_attribute_mutation import LinenAttributeMutation
from flaxify.lint.rules.linen_raw_transform import RawJaxTransformInLinen
from flaxify.lint.rules.linen_submodule_outside_setup import LinenSubmoduleOutsideSetup
from flaxify.lint.rules.list_to_jnp import ListToJnpFunction
from flaxify.lint.rules.logging_in_traced import LoggingInTracedCode
from flaxify.lint.rules.mutable_global_read import MutableGlobalRead
from flaxify.lint.rules.numpy_on_traced import NumpyOnTracedValue
from flaxify.lint.rules.outer_state_mutation import OuterStateMutation
from flaxify.lint.rules.print_in_traced import PrintInTracedCode
from flaxify.lint.rules.prng_key_reuse import PrngKeyReuse
from flaxify.lint.rules.self_mutation import SelfMutationInTracedMethod
from flaxify.lint.rules.static_self_mutation import StaticSelfMutated
from flaxify.lint.rules.traced_static_int import TracedValueAsStaticInt
from flaxify.lint.rules.unhashable_static_arg import UnhashableStaticArgument

RULES: list[type[Rule]] = sorted(
    [
        PrintInTracedCode, LoggingInTracedCode, GlobalWriteInTracedCode, OuterStateMutation,
        SelfMutationInTracedMethod, HostSideEffectInTracedCode, HostRandomnessInTracedCode,
        IteratorConsumedInTracedCode, DebugPrintFString, MutableGlobalRead,
        ControlFlowOnTracedValue, BoolOpOnTracedValue, AssertOnTracedValue, ConcreteConversionOfTracedValue,
        ItemOnTracedValue, NumpyOnTracedValue, TracedValueAsStaticInt, BooleanMaskOnTracedValue,
        ListToJnpFunction, Float64WithoutX64,
        InplaceUpdateOfArray, PrngKeyReuse, JitInLoop, UnhashableStaticArgument, JitMethodWithoutStaticSelf,
        StaticSelfMutated,
        LinenAttributeMutation, FixedKeyInModule, LinenSubmoduleOutsideSetup, RawJaxTransformInLinen,
        LinenApplyWithoutMutable,
        HaikuUnderRawJaxTransform, HaikuOutsideTransform,
        HaikuImport,
    ],
    key=lambda rule: rule.CODE,
)
ALL_CODES: tuple[str, ...] = ("JX001", *(rule.CODE for rule in RULES))
