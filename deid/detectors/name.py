"""NAME: patients, relatives and staff alike.

Three sources of evidence, combined here because each alone is weak:
- clinical cues before a name (患者, 姓名：, 家属, 其子, 主治医师：, 签名 ...) or a role after it (王五主任);
- the surname list (single and compound; the rarer surnames of 百家姓 only where the model says person) that a
  candidate must start with;
- the NER model's PER tokens, which also fix where a cue-found name ends.
The NER model's PER spans also count on their own in free prose (老伴石粉兰今年52岁, 总裁沈东军认为), as do
X某 / X某某, and a speaker's label heading a line (金石开：...). Every name found is then looked for again
elsewhere in the note, so a later bare mention is caught too. Common clinical words that start with a surname
character (高血压, 白细胞 ...) are never names, and neither is anything the clinical vocabulary holds or cuts
through: a drug (艾恒, 替吉奥), anatomy with a side (左膝, 右髂总), a sign (罗音).
"""
from __future__ import annotations

import re

from deid.detectors.base import Component, Document, Taken
from deid.resources import Resources, alternation, combine_digests
from deid.spans import EntityType, Span, make_span
from deid.text import is_cjk
from deid.vocabulary import ClinicalVocabulary, WordIndex

# Characters that do not occur in given names: grammatical words and medical morphemes (关节痛, 阿托品, 任脉).
_NOT_GIVEN = set("男女性岁因于在患诉述主入出院以及和与等的了是为有无行经予今昨前后左右上下内外"
                 "中伴并未已再又均可见示查术期间次年月日天时分个名位例号床科室病症炎痛热咳喘吐"
                 "泻诊治疗手签字医护师生长任教授查房说讲称表要认觉看听来去"
                 "尿液脉穴品酸素胺醇钠钾片丸散汤膏剂霉菌毒瘤癌部肋节血压糖脂肝肾肺脑胃肠多"
                 "，。、；：（）() ")
# Where the model drew the boundaries, only these are refused in a given name: grammar, medical morphemes and
# dosage forms (丁肝, 白癜风, 王|丸); everyday characters that _NOT_GIVEN also refuses (治, 中, 生) do occur in names,
# and so do 为, 有 and 和 (王为民, 朱有为, 张永和).
_MEDICAL_MORPHEMES = set("病症炎痛热咳喘吐泻尿液脉穴酸素胺醇钠钾霉菌毒瘤癌肋血压糖脂肝肾肺脑胃肠疹癣疮癜伤损丸片膏剂")
_GRAMMAR = set("男女性岁因于在的了是无与及等并") | _MEDICAL_MORPHEMES
# Grammatical words that are also the first of two given characters (郭在根, 金在中); the last one never.
_GIVEN_MIDDLE = set("在于")
# Characters _NOT_GIVEN refuses that names hold all the same (王为民, 朱有为, 张永和).
_NAME_CHARS_TOO = set("为有和")
# A grammatical word or an adverb the model's token took after the name (李自成|之死, 盖蒂|就, 朱朱|从).
_ADVERBS = set("就也都又还从")
_PARTICLE_AFTER = set("之的了是在于与及等并因") | _ADVERBS
# Characters that may directly follow a name: punctuation and grammatical words, not medical morphemes.
_BOUNDARY = set("男女因于在诉述以及和与等的了是为有无行经予今昨前后伴并未已再又均之，。、；：（）() ,.;:\n\t")

# 张某, 欧阳某某: surname + 某; not when the surname character ends a word (其某, 该某), nor before a place or an
# organisation (江苏某律师事务所: lexicons/workplace_endings.txt too).
_SOMEONE_NOT_BEFORE = ("医院", "卫生院", "诊所", "单位", "地", "处", "时", "日", "年", "月", "省", "市", "县", "区",
                       "镇", "村", "路")
# After a cue, a word in Latin letters is a name (总监Eric, 执行董事leo, 签名：BenBell); acronyms (CT, MRI) are not.
# Nor Roman numerals (患者为iv期胃癌).
_LATIN_AFTER_CUE = re.compile(r"(?![ivxlIVXL]+(?![A-Za-z]))(?:[A-Z][a-z]{2,}|"
                              r"[a-z]{3,})(?:[A-Z][a-z]+){0,2}(?![A-Za-z0-9])")
# A speaker's label heads a line of a transcript or an interview (金石开：建议关注主队): a name without a cue
# word. Not before a number or a sign, which a field label takes (谷丙:45, 宫高:32cm).
_SPEAKER = re.compile(r"(?:^|(?<=[\n。!?]))([\u4e00-\u9fa5]{2,4}):(?=[\u4e00-\u9fa5“\"'])")
# A bracket right after a name that holds only a name in Latin letters (its original spelling), with a lower-case
# letter: an acronym is a test or a code (张三（CT）示).
_ORIGINAL_SPELLING = re.compile(r"\(\s*(?=[^)]*[a-z])([A-Za-z][A-Za-z.'\- ]{1,40}?)\s*\)")
# A form field's value: Chinese characters (parts joined by an interpunct) up to where the field ends, at a space,
# a bracket or the line's end (姓名：透纳  性别：男, 记录者：杰森·瑞特曼（医师执业证...）). A value that ends at a
# comma or a full stop may be a sentence (上级医师：同意。), so those stay with the cue rule's surname test.
_FIELD_VALUE = re.compile(r"[\u4e00-\u9fff]{2,5}(?=[ \t\u3000\n（(]|$)"
                          r"|[\u4e00-\u9fff]{1,8}(?:[·•・][\u4e00-\u9fff]{1,8})+(?=[ \t\u3000\n（(，,。；;]|$)")
# A name typed with a space between its characters (姓名：张 三, 李 秀 英): one to three given characters.
_SPACED = re.compile(r"[\u4e00-\u9fa5](?: ?[\u4e00-\u9fa5]){1,3}")
# Words in Latin letters standing together (Zhang San, ZHANG Sanfeng, Zhang San-Feng, ZhangSan): what a name in
# pinyin is written as; `_pinyin_name` decides whether they are one.
_LATIN_WORDS = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]+(?:[ \-][A-Za-z]+){0,3}(?![A-Za-z0-9])")
_NEXT_LATIN_WORD = re.compile(r" ([A-Za-z]+)(?![A-Za-z0-9])")
_INTERPUNCT = re.compile("[·•・‧]")   # the middle dot as typed: Chinese, bullet, katakana, hyphenation point
# ... and a hyphen between Chinese characters, which sports news joins a foreign name's parts with (里卡多-富勒)
_NAME_JOINER = re.compile("[·•・‧]|(?<=[\u4e00-\u9fa5])-(?=[\u4e00-\u9fa5])")
# A name in Latin letters: capitalised words, not an acronym (CT, MRI) nor a lower-case word.
_LATIN_NAME = re.compile(r"(?:[A-Z][a-z]{2,}){1,3}")
# ... or, where the model calls it a person, a word of four capitals or more (ROSHAN, LISA); shorter ones are
# acronyms (CT, MRI). Lower-case words are not: there the model's persons were firms and places as often (atari).
_LATIN_CAPITALS = re.compile(r"[A-Z]{4,}(?:-[A-Z]{2,})?")
# ... and a lower-case one only where a verb of saying follows it (elaine说, moore-gwyn）表示).
_LATIN_LOWER = re.compile(r"[a-z]{4,}(?:-[a-z]{2,})?")
# What joins the items of a list (桑德兰、斯托克); 和 and 与 join a person and a firm as often (乔尔与魁北克彩票机构).
_LIST_JOINERS = set("、")
# Before a surname, what makes a familiar form of address (小朱, 老李, 阿陈).
_FAMILIAR = set("小老阿")
# A given name's initial in Latin letters before a transliterated surname (j.罗琳, a·约翰森).
_LATIN_INITIAL = re.compile(r"[A-Za-z]{1,2}[.·•・‧]")
_INITIAL_BEFORE = re.compile(r"(?<![A-Za-z])[A-Za-z]{1,2}[.·•・‧]$")
_SIDES = set("左右双")
_POSITIONS = set("叶侧上下中前后缘角段支房室")
_CLINICAL_JOINERS = set("()（）、")
_DOSE = re.compile(r"\s?(?:[0-9][0-9.]*\s?(?:mg|g|ml|μg|ug|iu|u|万u|毫克|克|毫升|片|粒|支|袋|瓶)|[0-9]+\.[0-9])", re.I)
# Surname characters that are also anatomy or position words (肺上叶, 胃周, vii段, 宫骶): the model's PER token
# starting with one of them in the middle of a word is anatomy.
_ANATOMY_SURNAMES = set("叶段周宫隆左右双")
_ORGANS = set("上下中左右前后内外侧肺肝胆胃肠肾脑心宫颈腹胸盆膀骨肌")
# ... or followed by a spatial postposition (隆突前, 叶间): an anatomical landmark.
_LANDMARK_AFTER = re.compile(r"前|旁|下方|周围|间")

# Function words that also happen to be rare surnames: before a role word they start a clause, not a name.
_FUNCTION_CHARS = set("由经请向被让给和与及在于对将把同跟为是")
# After a cue these begin a clause (患者于受凉后, 患者因腹痛), never a name.
_CLAUSE_STARTERS = set("于在因经被由从对将把为是与及")
# ... and right after a cue word, with no colon between, a conjunction does (老师和同学; 书写者：和阳 is a name).
_CONJUNCTIONS = set("和")
# Surname characters that in clinical text nearly always begin a word instead: 余 (余同前, 20余天), 程 (化疗3程),
# 尚 (尚可), 毕 (术毕), 窦 (胃窦), 索 (索条影), 呼 (呼叫). The model's PER token alone does not make them a name;
# a cue or a role does.
_WORDY_SURNAMES = _FUNCTION_CHARS | set("余程尚毕窦索呼")
# ... except 于 and 余, common surnames: at the head of a clause, ending cleanly, with a given name that is not a
# time or place word, the model's token is a name (，于海将彩票交给他) while the preposition is not (于今晨, 于海南).
_CLAUSE_HEAD = set("。、“”\"'(,;:!? \n\t")   # as Document.norm writes them (，-> ,)


def _capitalised(word: str) -> bool:
    """Zhang, ZHANG, San-Feng: each hyphenated part capitalised, or the word in capitals."""
    return word.isupper() or all(p[:1].isupper() and p[1:].islower() for p in word.split("-"))


class NameDetector(Component):
    name = "name"
    entity_types = (EntityType.NAME,)
    requires = ("ner",)   # PER tokens; cues, roles and pinyin find names without them
    uses = ("vocabulary", "resources")
    # Each rule's name (a span's explanation) and how far its span is trusted.
    SCORES = {"name.cue+ner": 0.97, "name.role_after+ner": 0.95, "name.cue": 0.92, "name.cue_latin": 0.9,
              "name.cue_spaced": 0.9, "name.role_after": 0.9, "name.someone": 0.9, "name.title": 0.9,
              "name.original": 0.9, "name.repeat": 0.9, "name.ner": 0.85, "name.pinyin": 0.85, "name.speaker": 0.85,
              "name.ner_foreign": 0.8, "name.field": 0.9}

    def __init__(self, vocabulary: ClinicalVocabulary | None = None, resources: Resources | None = None):
        files = resources or Resources.packaged()
        surnames = files.load("dictionaries/surnames.txt")
        rare_surnames = files.load("dictionaries/surnames_rare.txt")
        stop = files.load("dictionaries/name_stopwords.txt")
        self.vocabulary = vocabulary or ClinicalVocabulary(resources=files)
        syllables = files.load("lexicons/pinyin_syllables.txt")
        pinyin_surnames = files.load("lexicons/pinyin_surnames.txt")
        heads = files.load("lexicons/eponym_heads.tsv")
        context = files.load("lexicons/person_context.tsv")
        transliteration = files.load("lexicons/transliteration_chars.txt")
        clubs = files.load("lexicons/club_words.txt")
        drug_stems = files.load("lexicons/drug_stems.txt")
        body_chars = files.load("lexicons/body_surface_chars.txt")
        clinical_extra = files.load("lexicons/clinical_words_extra.txt")
        placeholders = files.load("lexicons/field_placeholders.txt")
        workplace = files.load("lexicons/workplace_endings.txt")
        self.version = combine_digests({"surnames": surnames.digest, "rare_surnames": rare_surnames.digest,
                                                  "stop": stop.digest,
                                                  "vocabulary": self.vocabulary.version,
                                                  "syllables": syllables.digest,
                                                  "pinyin_surnames": pinyin_surnames.digest,
                                                  "eponym_heads": heads.digest, "person_context": context.digest,
                                                  "transliteration": transliteration.digest, "clubs": clubs.digest,
                                                  "drug_stems": drug_stems.digest, "body_chars": body_chars.digest,
                                                  "clinical_extra": clinical_extra.digest,
                                                  "workplace": workplace.digest,
                                                  "placeholders": placeholders.digest})
        # a cue, then an optional signature word and a colon (主治医师签名：, 患者为); 参加人员, 抢救人员 ...
        self._cue_before = re.compile(rf"(?:{alternation(context.words('cue'))}|(?:参加|抢救|参与|讨论)?人员)"
                                      r"(?:签名|签字)?\s*(?:[:：]|为|是)?\s*")
        self._field_label = re.compile(rf"(?:{alternation(context.words('field'))})(?:签名|签字)?[ \t\u3000]*[:：]"
                                       r"[ \t\u3000]*")
        self._role_after = re.compile(alternation(context.words("role")))
        self._next_word = re.compile(alternation(context.words("next")))
        self._title = re.compile(alternation(context.words("title")))
        self._reporting = re.compile(alternation(context.words("reporting")))
        # "!word": a verb that begins like a club word (联袂 of 温斯莱特联袂出演)
        verbs = [w[1:] for w in clubs.words() if w.startswith("!")]
        club_words = [w for w in clubs.words() if w[0] != "!"]
        self._club_after = re.compile(f"(?!{alternation(verbs)})(?:{alternation(club_words)})")
        self._body_chars = frozenset(body_chars.lines()) | _POSITIONS   # after a side, with the vocabulary's
        organisations = workplace.words()
        not_before = (*_SOMEONE_NOT_BEFORE, *(w for w in organisations if len(w) >= 2))
        # the words between 某 and the organisation's ending are its name: no grammatical word or verb of motion
        # among them (客户范某留在商场 is a person)
        name_char = "(?:(?![" + "".join(sorted(_BOUNDARY | _FUNCTION_CHARS | set("到去来回住"))) + r"])[\u4e00-\u9fa5])"
        self._someone = re.compile(rf"某某?(?!{name_char}{{0,3}}(?:{alternation(not_before)}))")
        self._organisation_end = re.compile(f"(?:{alternation(organisations)})$")
        self._drug_stem = re.compile(f"(?:{alternation(drug_stems.words())})$")
        # a stem of two characters or more right after the token: the token is the drug's first half (帕尼|单抗)
        self._drug_stem_next = re.compile(alternation(w for w in drug_stems.words() if len(w) >= 2))
        # A PER token of three or more transliteration characters, or one joined by the interpunct (米兰·昆德拉), is
        # a foreign name though no Chinese surname starts it; a sports club written so is told apart by what follows.
        self._transliteration = frozenset(transliteration.words())
        self._foreign_run = re.compile("[A-Z][a-z]{2}|(?<![A-Za-z])[A-Z]{4,}(?![A-Za-z])|[·•・‧]|["
                                       + "".join(sorted(self._transliteration)) + "]{2}|(?<![A-Za-z])[a-z]{4,}"
                                       rf"(?:-[a-z]{{2,}})?\)?(?:{alternation(context.words('reporting'))})")
        rows = heads.rows()
        self._not_heads = tuple(r["head"][1:] for r in rows if r["head"].startswith("!"))
        words = [r for r in rows if not r["head"].startswith("!")]
        self._head_after_any = re.compile(alternation(r["head"] for r in words if r["after"] in ("any", "name")))
        self._head_after_name = re.compile(alternation(r["head"] for r in words if r["after"] == "name"))
        self._head_after_clan = re.compile(alternation(r["head"] for r in words))
        self.syllables = frozenset(syllables.lines())
        # one-letter readings (a, e, o) are words of every Latin text, not surnames
        self.pinyin_surnames = frozenset(w for w in pinyin_surnames.lines() if len(w) >= 2)
        words = surnames.lines()
        self.single = {w for w in words if len(w) == 1}
        self.compound = {w for w in words if len(w) == 2}
        # only where the model says person, and not in the gate: as everyday words they would pass a quarter
        # more clinical text to the model
        self.rare = frozenset(rare_surnames.lines()) - self.single
        self.stopwords = tuple(stop.lines())
        self._clinical_extra = tuple(clinical_extra.lines())
        self._placeholders = tuple(placeholders.lines())
        self._surname_char = re.compile("[" + "".join(sorted(self.single | {c[0] for c in self.compound})) + "]")

    # -- candidate tests -------------------------------------------------------------------------
    def surname_len(self, s: str, model: bool = False) -> int:
        """2 for a compound surname, 1 for a single one (model: also the rare ones of surnames_rare.txt), else 0."""
        if s[:2] in self.compound:
            return 2
        return 1 if s[:1] in self.single or model and s[:1] in self.rare else 0

    def plausible(self, cand: str, following: str = "", model: bool = False) -> bool:
        """Surname + 1-2 given characters, none of them a stop character, and not the start of a
        clinical word (checked against the candidate plus the text that follows it). Where the NER model drew
        the boundaries (model=True), only grammatical words are refused as given names (吴冠中, 王治国 are names)."""
        n = self.surname_len(cand, model)
        if n and self.surname_len(cand) != n and len(cand) != 3:
            return False   # a rare surname with one given character is a word or a place as often (益阳, 怀柔)
        if not n or not (n + 1 <= len(cand) <= n + 2) or not all(is_cjk(c) for c in cand):
            return False
        given = cand[n:]
        if model and len(given) == 2 and given[0] in _GIVEN_MIDDLE:
            given = given[1:]   # 郭在根, 李在明: 在 inside a given name
        if any(c in (_GRAMMAR if model else _NOT_GIVEN) for c in given):
            return False
        return not (cand + following).startswith(self.stopwords)

    def familiar(self, cand: str) -> bool:
        """小朱, 老李: a familiar form of address, a person where the model says so; not with a surname that is
        mostly a word or anatomy (小于, 小叶)."""
        return (len(cand) == 2 and cand[0] in _FAMILIAR and cand[1] in self.single
                and cand[1] not in _WORDY_SURNAMES | _ANATOMY_SURNAMES)

    def pinyin_syllables(self, word: str) -> int:
        """How many pinyin syllables `word` is made of (one or two; hyphens join them), or 0 when it is not pinyin."""
        word = word.lower().replace("-", "")
        if word in self.syllables:
            return 1
        return 2 if any(word[:i] in self.syllables and word[i:] in self.syllables for i in range(1, len(word))) else 0

    def pinyin_name(self, words: list[str]) -> bool:
        """Surname and given name in pinyin, each word capitalised or in capitals (Zhang San, ZHANG Sanfeng,
        San Zhang): a surname, then one or two given syllables in one or two words. A single word (ZhangSan) counts
        when a capital opens its given name."""
        if len(words) == 1:
            caps = [i for i, c in enumerate(words[0]) if c.isupper()]
            if len(caps) != 2 or caps[0] != 0:
                return False
            words = [words[0][:caps[1]], words[0][caps[1]:]]
        if not 2 <= len(words) <= 3 or not all(_capitalised(w) for w in words):
            return False
        for surname, given in ((words[0], words[1:]), (words[-1], words[:-1])):
            if surname.lower() in self.pinyin_surnames:
                syllables = [self.pinyin_syllables(w) for w in given]
                if all(syllables) and sum(syllables) <= 2:
                    return True
        return False

    def may_contain_name(self, clause: str) -> bool:
        """Cheap gate for the NER model: could this clause hold a name the detector would keep? A surname + given
        name judged as the model's tokens are (谢有福, 孙长林: 有 and 长 pass there), or what a foreign name is
        written with: letters (Anderson), an interpunct, or a run of transliteration characters (温斯莱特)."""
        if self._foreign_run.search(clause):
            return True
        for m in self._surname_char.finditer(clause):
            i = m.start()
            n = self.surname_len(clause[i:i + 2])
            if n and (self.plausible(clause[i:i + n + 1], clause[i + n + 1:i + n + 5], model=True)
                      or self.plausible(clause[i:i + n + 2], clause[i + n + 2:i + n + 6], model=True)):
                return True
        return False

    def ends_cleanly(self, text: str, end: int) -> bool:
        """A name may end here: end of text, a non-CJK character, a grammatical word, a role or a verb."""
        nxt = text[end:end + 1]
        return (not nxt or not is_cjk(nxt) or nxt in _BOUNDARY
                or bool(self._role_after.match(text, end)) or bool(self._next_word.match(text, end)))

    # -- detection -------------------------------------------------------------------------------
    def clinical_word(self, text: str, start: int, end: int, clinical: WordIndex, cued: bool = False) -> bool:
        """The candidate is, or lies inside, or cuts into a clinical word (艾恒, 吉奥 of 替吉奥, 左髂总 of 左髂总动脉),
        or holds one of three characters or more (希罗达 in 希罗达叒), its given name is a body part (余|腹膜), or it is
        a side before a body part (左膝). After a cue (麻醉医师：李子) a name that merely equals a clinical word stands
        (康婷, 李子) unless a medical morpheme gives it away (白癜风); a clinical word around, across or inside it
        still vetoes it."""
        exact_ok = cued and not any(c in _MEDICAL_MORPHEMES for c in text[start:end])
        if any((cs <= start and end <= ce and not (exact_ok and (cs, ce) == (start, end)))
               or (start < cs < end < ce or cs < start < ce or start <= cs and ce <= end and ce - cs < end - start)
               and ce - cs >= 3
               for cs, ce in clinical.near(start, end)):
            return True
        n = self.surname_len(text[start:start + 2])
        if text[start + n:end] in self.vocabulary.body:
            return True
        after_side = text[start + 1:start + 2]
        return text[start] in _SIDES and (after_side in self.vocabulary.body_initials or after_side in self._body_chars)

    def foreign(self, text: str, start: int, end: int, said: bool = False) -> bool:
        """A foreign name: two or more transliteration characters (基恩, 索罗斯), not a drug name (阿莫西林, 帕尼|单抗)
        unless what follows says person (said: a role, a reporting verb, its spelling in brackets:
        莫亚格林（moyagreene）表示); parts joined by the interpunct, half of them transliteration characters
        (刘易斯·卡洛尔); an initial before them (j.罗琳); or words in Latin letters (DavidSmith, ROSHAN)."""
        cand = text[start:end]
        if _LATIN_NAME.fullmatch(cand) or _LATIN_CAPITALS.fullmatch(cand):   # BradBuxer, Svensson, ROSHAN
            return True
        if _LATIN_LOWER.fullmatch(cand):
            return said
        if initial := _LATIN_INITIAL.match(cand):   # j.罗琳, a·约翰森: an initial, then the transliteration
            cand = cand[initial.end():]
            return len(cand) >= 2 and self._transliterated(cand)
        parts = _NAME_JOINER.split(cand)
        if len(parts) > 1 and not parts[-1]:
            parts.pop()   # 保罗·: the model's token stopped at the interpunct
        chars = "".join(parts)
        if not all(parts) or not all(is_cjk(c) for c in chars):
            return False
        if len(parts) > 1:   # 刘易斯·卡洛尔: the interpunct joins a foreign name; no drug is written so
            return 2 * sum(c in self._transliteration for c in chars) >= len(chars)
        missing = sum(c not in self._transliteration for c in chars)
        if missing > (len(chars) >= 4):   # a long name may hold one character the table lacks (谢尔久科夫)
            return False
        drug = self._drug_stem.search(cand) or self._drug_stem_next.match(text, end)
        return len(cand) >= 2 and (said or not drug)

    def in_clinical_context(self, text: str, start: int, end: int, clinical: WordIndex) -> bool:
        """Model-only evidence does not hold where the candidate is glued to a clinical word (高敏|肌钙蛋白), stands in
        brackets or a list beside one (替吉奥胶囊(艾奕), 予卓迪、耐信片) or is followed by a dose (方克)1g)."""
        joined_before = bool(start) and text[start - 1] in _CLINICAL_JOINERS
        joined_after = end < len(text) and text[end] in _CLINICAL_JOINERS
        before, after = start - joined_before, end + joined_after
        # a long clinical word, or any clinical word across a bracket or list mark (短词 like 脸上 are everyday words)
        if any(ce == before and (joined_before or ce - cs >= 3) or cs == after and (joined_after or ce - cs >= 3)
               for cs, ce in clinical.near(before, after)):
            return True
        prev = text[start - 1] if start else ""
        if text[start] in _ANATOMY_SURNAMES and (prev and (prev in _ORGANS or prev.isascii() and prev.isalnum())
                                                 or _LANDMARK_AFTER.match(text, end)):
            return True
        # a dose after it, or a treatment verb before it (口服瑞宁德, 予卓迪)
        return bool(_DOSE.match(text, after) or self.vocabulary.treated_with.search(text, max(0, start - 5), start))

    def detect(self, doc: Document) -> list[Span]:
        text = doc.norm
        per = {s: e for s, e in doc.ner_of("PER")}
        places = [(s, e, label) for s, e, label in (doc.ner or ()) if label != "PER"]
        place_starts, place_ends = {s for s, _e, _l in places}, {e for _s, e, _l in places}
        loc_ends = {e for _s, e, label in places if label == "LOC"}
        clinical = self.vocabulary.of(doc)
        found: dict[tuple[int, int], Span] = {}

        def add(s: int, e: int, kind: str, why: str):
            # a cue or a role outweighs a same-letter word
            cued = kind != "ner" or bool(self._role_after.match(text, e))
            if (not (self.plausible(text[s:e], text[e:e + 4], model=kind == "ner")
                     or kind == "ner" and self.familiar(text[s:e]))
                    or self.clinical_word(text, s, e, clinical, cued=cued)):
                return
            old = found.get((s, e))
            if old is None:
                found[(s, e)] = self._span(doc, s, e, kind, why)
            else:  # cue and NER agree: keep one span that says so
                found[(s, e)] = old.with_(score=max(old.score, self.SCORES[why]), sources=old.sources | {kind},
                                          explanation=old.explanation + "+" + why.split(".", 1)[1])

        for s, e in per.items():
            if s > 0 and text[s - 1:s + 1] in self.compound:   # LAC cut 上官强琴 after 上
                s -= 1
            if e - s > 2 and (text[e - 1] in _PARTICLE_AFTER or self._word_across(text, e)) and self.plausible(
                    text[s:e - 1], model=True):
                e -= 1   # 王芳|征求, 陈然|副主任: the token took the first character of the word after the name
            e = self._extend_to_boundary(text, s, e)
            role = bool(self._role_after.match(text, e))
            if text.startswith(self._clinical_extra, s) and not role:
                continue   # 高敏反应: a clinical word the vocabulary lacks (高敏医生: a role makes it a name)
            if (initial := _INITIAL_BEFORE.search(text[max(0, s - 3):s])) and self._transliterated(text[s:e]):
                s -= len(initial.group())   # LAC's 罗琳 of j.罗琳
            reported = role or bool(self._reporting.match(text, e + (text[e:e + 1] == ")")))
            said = reported or bool(_ORIGINAL_SPELLING.match(text, e))
            foreign = self.foreign(text, s, e, said)   # 索罗斯: a foreign name, not the word 索
            if (text[s] in _WORDY_SURNAMES and not (reported or foreign or self._heads_clause(text, s, e))
                    or self.in_clinical_context(text, s, e, clinical)):
                continue
            if self._club_after.match(text, e) or text[max(0, s - 3):s].lower().endswith("vs"):
                continue   # 桑坦德主场: a club, not a person
            if not reported and (text[s - 1:s] in _LIST_JOINERS and s - 1 in place_ends
                                 or text[e:e + 1] in _LIST_JOINERS and e + 1 in place_starts):
                continue   # 桑德兰、斯托克: in a list with a place or an organisation the model tags, one too
            if foreign and s in loc_ends:
                continue   # 加利福尼亚州阿纳海姆: a foreign-looking token right after a place is a place (not
                # after an organisation: 联赛杯温格)
            if foreign and not self.clinical_word(text, s, e, clinical):
                found.setdefault((s, e), self._span(doc, s, e, "ner", "name.ner_foreign"))
            else:
                add(s, e, "ner", "name.ner")
        cues = list(self._cue_before.finditer(text))
        for m in cues:
            if latin := _LATIN_AFTER_CUE.match(text, m.end()):
                if not (latin.group()[0].isupper() or self.ends_cleanly(text, latin.end())):
                    continue   # 予患者xelox方案: a regimen, not a name; a capitalised word is one (设计师Anderson转投)
                end = self._pinyin_words_after(text, latin.end())   # 姓名：zhang san
                found.setdefault((latin.start(), end), self._span(doc, latin.start(), end, "pattern", "name.cue_latin"))
            elif spaced := self._spaced_after_cue(text, m.end(), clinical):
                found.setdefault(spaced, self._span(doc, *spaced, "pattern", "name.cue_spaced"))
            else:
                self._after_cue(text, m.end(), per, add)
        self._field_values(doc, clinical, found)
        for m in _LATIN_WORDS.finditer(text):   # Zhang San, with or without a cue
            if self.pinyin_name(m.group().split(" ")):
                found.setdefault(m.span(), self._span(doc, *m.span(), "pattern", "name.pinyin"))
        for m in _SPEAKER.finditer(text):
            s, e = m.span(1)
            # two characters are a field label as often as a name (付款:已交) unless the model says person; a
            # field label may also be a clinical word (宫颈:光滑)
            full = e - s == self.surname_len(text[s:s + 2]) + 2
            if (full or per.get(s) == e) and not self.clinical_word(text, s, e, clinical):
                add(s, e, "pattern", "name.speaker")
        for m in self._role_after.finditer(text):
            self._before_role(text, m.start(), per, add)
        self._surname_and_title(doc, {m.end() for m in cues}, found)
        for m in self._someone.finditer(text):   # 张某, 欧阳某某: a surname that stands for a person
            s = next((m.start() - n for n in (2, 1) if self.surname_len(text[m.start() - n:m.start()]) == n), None)
            if s is not None and s >= 0:
                found.setdefault((s, m.end()), self._span(doc, s, m.end(), "pattern", "name.someone"))
        for key in [k for k in found if self.eponym(text, *k)]:
            del found[key]
        self._original_spelling(doc, found)
        self._repeat(doc, found)
        return list(found.values())

    def _word_across(self, text: str, end: int) -> bool:
        """A word that follows names (a role, a verb: 征求, 副主任) starts on the token's last character and goes on
        past it (not 和 of 张永和)."""
        return any((m := word.match(text, end - 1)) and m.end() > end for word in (self._next_word, self._role_after))

    def _field_values(self, doc: Document, clinical: WordIndex, found: dict) -> None:
        """A form field's value is a name whatever its characters (姓名：透纳, 上级医师：风清扬, 主治医师：火来胜): the
        field's end bounds it, so no surname is needed; a clinical word (医师签名：阿托品) or a word that opens a
        clinical phrase is not one. Its span replaces the shorter ones other rules found inside it."""
        text = doc.norm
        for m in self._field_label.finditer(text):
            value = _FIELD_VALUE.match(text, m.end())
            if not value:
                continue
            s, e = value.span()
            if text[s:e].startswith(self.stopwords + self._placeholders) or self.clinical_word(text, s, e, clinical):
                continue
            for key in [k for k in found if s <= k[0] and k[1] <= e]:
                del found[key]
            if not any(ks < e and s < ke for ks, ke in found):
                found[(s, e)] = self._span(doc, s, e, "pattern", "name.field")

    def _span(self, doc: Document, start: int, end: int, kind: str, rule: str) -> Span:
        return make_span(doc.text, start, end, EntityType.NAME, 1, kind, self.SCORES[rule], rule)

    def eponym(self, text: str, start: int, end: int) -> bool:
        """The candidate is the person's name in an eponymous term: X氏 (a surname or a transliteration) before any
        head word of lexicons/eponym_heads.tsv (罗氏征, 麦氏点, 布鲁津斯基氏征), or a transliteration before one that
        follows bare names too (霍夫曼征, 巴宾斯基征, Murphy征), or any name before one that follows every name (陶瑟征,
        李斯特菌), or a name in Latin letters before any head (Murphy征, dixon术). The head may begin inside the
        candidate (the model's 罗氏|征)."""
        for cut in range(start + 1, end + 1):
            name = text[start:cut]
            clan = name.endswith("氏") or text[cut:cut + 1] == "氏"
            head_at = cut + (not name.endswith("氏") and clan)
            if text.startswith(self._not_heads, head_at):
                continue
            # a name in Latin letters takes every head, as X氏 does: no note writes a person so before 术 (dixon术)
            if (clan or _LATIN_WORDS.fullmatch(name)) and self._head_after_clan.match(text, head_at):
                return True
            if self._head_after_name.match(text, head_at) or self._head_after_any.match(text, head_at) and (
                    self._transliterated(name)):
                return True
        return "氏" in text[start + 1:end - 1]   # the model's 蓝氏贾 of 蓝氏贾第鞭毛虫: no name holds 氏 inside

    def _transliterated(self, name: str) -> bool:
        """Two or more characters of the transliteration table (a long one may hold one it lacks: 布鲁津斯基)."""
        chars = _INTERPUNCT.sub("", name)
        missing = sum(c not in self._transliteration for c in chars)
        return len(chars) >= 2 and all(is_cjk(c) for c in chars) and missing <= (len(chars) >= 4)

    def _pinyin_words_after(self, text: str, end: int) -> int:
        """The end of a name in Latin letters after a cue: the next one or two words when they are pinyin
        syllables (姓名：zhang san feng), else the first word's end."""
        for _ in range(2):
            m = _NEXT_LATIN_WORD.match(text, end)
            if not m or not self.pinyin_syllables(m.group(1)) or not self.ends_cleanly(text, m.end()):
                break
            end = m.end()
        return end

    def _spaced_after_cue(self, text: str, pos: int, clinical: WordIndex) -> tuple[int, int] | None:
        """A name written with spaces between its characters right after a cue (姓名：张 三): the characters
        without the spaces must make a plausible name that ends cleanly."""
        m = _SPACED.match(text, pos)
        if not m or " " not in m.group() or text[pos] in _CLAUSE_STARTERS:
            return None
        chars = [i for i in range(pos, m.end()) if text[i] != " "]
        for n in range(len(chars), 1, -1):
            end = chars[n - 1] + 1
            joined = "".join(text[i] for i in chars[:n])
            if (" " in text[pos:end] and self.plausible(joined, text[end:end + 4]) and self.ends_cleanly(text, end)
                    and not self.clinical_word(text, pos, end, clinical, cued=True)):
                return pos, end
        return None

    def _original_spelling(self, doc: Document, found: dict[tuple[int, int], Span]) -> None:
        """A name written in Chinese and then in its own script in brackets (阿特金森（martin atkinson）) is one
        person twice: the bracketed name is masked with it."""
        text = doc.norm
        for _s, e in list(found):
            if m := _ORIGINAL_SPELLING.match(text, e):
                key = m.span(1)
                found.setdefault(key, self._span(doc, *key, "pattern", "name.original"))

    def _heads_clause(self, text: str, start: int, end: int) -> bool:
        """于 or 余 as a surname, not the preposition or "the rest" (余无特殊, 20余天): at the head of a clause (see
        _CLAUSE_HEAD), or with two given characters after a grammatical word (的于澄, 与余胤良); a given name
        that is no time, place or clinical word, ending cleanly."""
        if text[start] not in "于余":
            return False
        prev, given = text[start - 1] if start else "", text[start + 1:end]
        head = not prev or prev in _CLAUSE_HEAD or len(given) == 2 and (prev in _BOUNDARY or prev in _FUNCTION_CHARS)
        return (head and self.plausible(text[start:end], text[end:end + 4], model=True)
                and not any(c in _NOT_GIVEN - _NAME_CHARS_TOO for c in given) and self.ends_cleanly(text, end)
                and not text[end:end + 1].isdigit())   # 于 2016-07-20: the preposition before a date

    def _after_cue(self, text: str, pos: int, per: dict[int, int], add) -> None:
        if pos < len(text) and text[pos] in _CONJUNCTIONS and is_cjk(text[pos - 1]):
            return
        while pos < len(text) and text[pos] not in _CLAUSE_STARTERS:   # 患者于受凉后: a clause, not a name
            cut = self._cut(text, pos)
            if (pos in per and self.plausible(text[pos:per[pos]]) and self.ends_cleanly(text, per[pos])
                    and (cut is None or cut <= per[pos])):
                end = per[pos]
                add(pos, end, "pattern", "name.cue+ner")
            elif cut is not None:
                # The cue's boundary beats a shorter NER token: LAC often splits off a rare third character.
                end = cut
                add(pos, end, "pattern", "name.cue")
            else:
                return
            # A list of names after one cue: 参加人员：王五、赵六
            if end < len(text) and text[end] in "、,，" and self.surname_len(text[end + 1:end + 3]):
                pos = end + 1
                continue
            return

    def _extend_to_boundary(self, text: str, start: int, end: int) -> int:
        """LAC splits rare given names (张娟永 -> 张娟 + 永); take the next character when the three-character
        name is plausible and is followed by a clear boundary while the NER token is not, and it is no adverb
        (邓恩|都已)."""
        nxt = text[end:end + 1]
        if self.ends_cleanly(text, end):
            return end
        if (nxt and is_cjk(nxt) and nxt not in _NOT_GIVEN and nxt not in _ADVERBS
                and self.plausible(text[start:end + 1], text[end + 1:end + 5])
                and self.ends_cleanly(text, end + 1)):
            return end + 1
        return end

    def _cut(self, text: str, pos: int) -> int | None:
        """End of a surname + 1-2 given characters starting at pos, if it ends on a boundary."""
        n = self.surname_len(text[pos:pos + 2])
        if not n:
            return None
        for given in (2, 1):
            end = pos + n + given
            if end > len(text):
                continue
            cand = text[pos:end]
            if given == 2 and (self._role_after.match(text, end - 1) or self._next_word.match(text, end - 1)):
                continue   # 陈然副主任医师: the last character starts the role word
            if self.plausible(cand, text[end:end + 4]) and self.ends_cleanly(text, end):
                return end
        return None

    def _before_role(self, text: str, role_start: int, per: dict[int, int], add) -> None:
        ner_end = {e: s for s, e in per.items()}
        if role_start in ner_end and self.plausible(text[ner_end[role_start]:role_start]):
            add(ner_end[role_start], role_start, "pattern", "name.role_after+ner")
            return
        for length in (3, 2, 4):
            s = role_start - length
            if s < 0 or text[s] in _FUNCTION_CHARS:
                continue
            cand = text[s:role_start]
            before = text[s - 1] if s > 0 else " "
            if (self.plausible(cand) and not self._organisation_end.search(cand)   # 经纪|公司总经理
                    and (not is_cjk(before) or before in _BOUNDARY or before in _FUNCTION_CHARS)):
                add(s, role_start, "pattern", "name.role_after")
                return

    def _surname_and_title(self, doc: Document, cue_ends: set[int], found: dict[tuple[int, int], Span]) -> None:
        """A bare surname and a title (李女士, 欧阳先生, 家属孙女士, 邵老师) stand for a person: one span over both, as
        the model tags them. The surname must start a word: after a cue, a boundary or no Chinese character (not 文
        of 语文老师), and not a function word (向医生反映)."""
        text = doc.norm
        taken_ends = {e for _s, e in found}
        for m in self._title.finditer(text):
            if m.start() in taken_ends:   # 王芳女士: the name before the title is found already
                continue
            for n in (2, 1):
                s = m.start() - n
                if s < 0 or self.surname_len(text[s:m.start()]) != n or n == 1 and text[s] in _WORDY_SURNAMES:
                    continue
                before = text[s - 1] if s else ""
                if not before or not is_cjk(before) or before in _BOUNDARY or s in cue_ends:
                    found.setdefault((s, m.end()), self._span(doc, s, m.end(), "pattern", "name.title"))
                break

    def _repeat(self, doc: Document, found: dict[tuple[int, int], Span]) -> None:
        """Every other occurrence of a name already found in this note is a name too (one pass over the note,
        whatever the number of names; the longer name first where two start at one place)."""
        text = doc.norm
        names = sorted({text[s:e] for s, e in found}, key=len, reverse=True)
        if not names:
            return
        taken = Taken(len(text))
        for s, e in found:
            taken.take(s, e)
        for m in re.finditer("|".join(map(re.escape, names)), text):
            s, e = m.span()
            if taken.claim(s, e):
                found[(s, e)] = self._span(doc, s, e, "pattern", "name.repeat")
