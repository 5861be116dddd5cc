import Hummingbird
import CZlib
