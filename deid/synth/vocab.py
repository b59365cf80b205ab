"""Vocabulary of the synthetic corpus. Kept apart from the detectors' dictionaries on purpose: where the
two differ (synonyms, spellings, out-of-dictionary hospitals), the evaluation measures a real gap.
Each sensitive phrase carries its gold tier, decided here from the paper's tier definitions."""

NOTE_TYPES = [
    # (code, Chinese title)
    ("OUTPATIENT", "门急诊病历"),
    ("WARD_ROUND", "查房记录"),
    ("DISCHARGE", "出院小结"),
    ("ADMISSION", "入院记录"),
    ("FIRST_PROGRESS", "首次病程记录"),
    ("ADMIT_DISCHARGE_24H", "24小时内入出院记录"),
    ("PREOP_DISCUSSION", "术前讨论"),
    ("OPERATION", "手术记录"),
    ("FIRST_POSTOP", "术后首次病程记录"),
    ("SPECIALTY", "专科记录"),
    ("PERIODIC_SUMMARY", "阶段小结"),
    ("RESUSCITATION", "抢救记录"),
    ("DEATH", "死亡记录"),
]

RELATIONS = ["配偶", "其子", "其女", "其夫", "其妻", "父亲", "母亲", "儿子", "女儿", "哥哥", "姐姐", "弟弟", "妹妹"]
DOCTOR_TITLES = ["主任医师", "副主任医师", "主治医师", "住院医师"]
DEPARTMENTS = ["心内科", "呼吸内科", "消化内科", "神经内科", "内分泌科", "肾内科", "血液科", "普外科", "骨科",
               "泌尿外科", "妇产科", "儿科", "感染科", "皮肤科", "眼科", "耳鼻喉科", "急诊科", "重症医学科", "肿瘤科",
               "风湿免疫科"]
DRUGS = ["阿司匹林", "氯吡格雷", "阿托伐他汀", "二甲双胍", "胰岛素", "硝苯地平", "美托洛尔", "奥美拉唑", "头孢曲松",
         "左氧氟沙星", "甲泼尼龙", "呋塞米", "螺内酯", "华法林", "低分子肝素", "丙戊酸钠", "利巴韦林", "恩替卡韦",
         "替诺福韦", "长春新碱", "长春西汀", "甘露醇", "白蛋白", "高锰酸钾", "石膏固定", "黄体酮", "叶酸", "铁剂",
         "苄星青霉素", "阿昔洛韦", "多西环素", "阿奇霉素", "布洛芬", "对乙酰氨基酚", "硫酸镁", "缩宫素"]
SYMPTOMS = ["胸痛", "胸闷", "气短", "咳嗽", "咳痰", "发热", "腹痛", "腹胀", "恶心", "呕吐", "头晕", "头痛", "乏力",
            "水肿", "心悸", "关节痛", "皮疹", "尿频", "尿急", "阴道流血", "下腹痛", "黄疸", "高热", "纳差"]
DIAGNOSES = ["冠状动脉粥样硬化性心脏病", "高血压病3级", "2型糖尿病", "社区获得性肺炎", "慢性阻塞性肺疾病急性加重",
             "急性胰腺炎", "脑梗死", "慢性肾脏病4期", "类风湿关节炎", "缺铁性贫血", "胆囊结石伴胆囊炎",
             "甲状腺功能亢进症", "带状疱疹", "高脂血症", "子宫肌瘤", "卵巢囊肿", "前列腺增生", "腰椎间盘突出症",
             "股骨颈骨折", "急性阑尾炎"]
OPERATIONS = ["腹腔镜胆囊切除术", "经皮冠状动脉介入治疗", "全髋关节置换术", "阑尾切除术", "甲状腺部分切除术",
              "子宫肌瘤剔除术", "经尿道前列腺电切术", "腰椎后路减压融合术"]
GENERIC_PLACES = ["当地医院", "外院", "我院", "当地县医院", "上级医院", "社区医院", "基层医院", "当地诊所"]

# Hospitals not in the product dictionary (the pattern must find them).
OUT_OF_DICT_HOSPITALS = ["{county}第二人民医院", "{county}中医院", "{county}人民医院", "{county}妇幼保健院",
                         "{town}镇卫生院", "{city}{district}{road}社区卫生服务中心", "仁爱医院", "博爱医院",
                         "和睦家医院", "{surname}氏诊所", "{city}骨科医院", "{city}第三人民医院", "{city}传染病医院",
                         "{city}眼科医院", "{city}中西医结合医院", "{city}肿瘤医院"]

# STD facts: (text, tier). Negative screening results are written by the generator with tier 3.
STD_POSITIVE = [
    ("HIV感染", 1), ("艾滋病", 1), ("AIDS", 1), ("HIV", 1), ("梅毒", 1), ("潜伏梅毒", 1), ("二期梅毒", 1),
    ("神经梅毒", 1), ("淋病", 1), ("硬下疳", 1),
    ("解脲支原体", 2), ("沙眼衣原体", 2), ("生殖器疱疹", 2), ("尖锐湿疣", 2), ("HPV16", 2), ("高危型HPV", 2),
    ("HPV", 2), ("人乳头瘤病毒", 2), ("生殖支原体", 2), ("非淋菌性尿道炎", 2),
    ("乙肝", 3), ("慢性乙型病毒性肝炎", 3), ("乙型肝炎", 3), ("HBsAg", 3), ("丙肝", 3), ("丙型肝炎", 3), ("HCV", 3),
    ("乙肝大三阳", 3), ("小三阳", 3),
    # whole mentions as clinicians and the ICD-10 name them
    ("梅毒性心脏病", 1), ("淋球菌性尿道炎", 1), ("外阴疱疹", 2), ("肛周尖锐湿疣", 2), ("女性衣原体性盆腔炎", 2),
    ("乙型丁型病毒性肝炎", 3), ("慢性乙型病毒性肝炎，中度", 3), ("HIV病伴结核", 1),
]
STD_SCREEN_TESTS = ["HIV", "梅毒", "TPPA", "RPR", "HBsAg", "HCV", "TRUST", "抗HCV"]
STD_SCREEN_TIER_IF_POSITIVE = {"HIV": 1, "梅毒": 1, "TPPA": 1, "RPR": 1, "HBsAg": 3, "HCV": 3, "TRUST": 1, "抗HCV": 3}

# Pregnancy facts: (text, tier).
PREGNANCY_EVENTS = [
    ("人工流产", 1), ("药物流产", 1), ("自然流产", 1), ("稽留流产", 1), ("无痛人流", 1), ("引产", 1), ("胎停育", 1),
    ("剖宫产", 2), ("顺产", 2), ("足月顺产", 2), ("早产", 2), ("清宫术", 2), ("异位妊娠", 2), ("宫外孕", 2),
    ("妊娠期糖尿病", 2), ("前置胎盘", 2), ("试管婴儿", 2), ("胎膜早破", 2), ("产后出血", 2), ("葡萄胎", 2),
]
MARITAL = [("已婚", 3), ("未婚", 3), ("离异", 3), ("丧偶", 3), ("已婚已育", 3), ("已婚未育", 3), ("未婚未育", 3),
           ("适龄结婚", 3), ("再婚", 3)]
CHILDREN = [("育有一子", 3), ("育有一女", 3), ("育有1子1女", 3), ("育有2子", 3), ("育有一子一女", 3)]

GIVEN_EXTRA = list("建国志华文明秀英丽娟淑芬桂兰玉梅海燕晓东春雨子涵浩然欣怡宇轩梓萱思远博文俊杰雪梅红霞永强德胜"
                   "立新国庆卫东振华美玲慧敏静怡佳琪")
ROAD_WORDS = list("人民解放建设胜利中山和平文化幸福光明新华朝阳东风友谊青年团结长江黄河复兴迎宾")
ROAD_SUFFIX = ["路", "街", "大街", "大道", "巷", "胡同"]
COMMUNITY = ["花园", "小区", "家园", "公寓", "新村", "苑", "社区"]

# Clinical course sentences: filler with no PHI, many of them hard negatives for the detectors.
COURSE = [
    "入院后完善相关检查，予抗感染、化痰、平喘等对症支持治疗。",
    "复查血常规较前好转，继续当前治疗方案。",
    "患者夜间睡眠欠佳，予艾司唑仑1mg口服。",
    "心电图示窦性心律，ST段未见明显压低，T波低平。",
    "腹部超声提示胆囊多发结石，胆总管未见扩张。",
    "血压波动于130-150/80-95mmHg，调整降压方案。",
    "空腹血糖7.8mmol/L，餐后2小时血糖11.2mmol/L，继续胰岛素皮下注射。",
    "胸部CT示右肺下叶斑片影，CT值约45HU，考虑炎症。",
    "MRI示第3腰椎椎体压缩性改变，L4/5椎间盘突出。",
    "左侧第5肋骨骨折，予胸带固定。",
    "尿常规：尿蛋白(++)，潜血(+)，白细胞(-)。",
    "凝血功能：PT 13.2s，APTT 35.6s，INR 1.12，D-二聚体 0.8mg/L。",
    "患者诉白细胞偏低，予升白治疗后复查WBC 4.5×10^9/L。",
    "高血压病史明确，平素血压控制可，予硝苯地平控释片30mg qd。",
    "请营养科会诊，予低盐低脂糖尿病饮食。",
    "每日记录24小时出入量，出量约1500ml，入量约2000ml。",
    "予低分子肝素4000IU皮下注射q12h预防血栓。",
    "康复科指导下床活动，患者耐受可。",
    "甲状腺功能：FT3 4.2pmol/L，FT4 15.6pmol/L，TSH 2.1mIU/L，TPO抗体阴性。",
    "带状疱疹后遗神经痛，予加巴喷丁口服。",
    "石膏固定良好，末梢血运正常。",
    "黄疸较前消退，总胆红素降至35μmol/L。",
    "予高流量吸氧，SpO2维持在95%以上。",
    "白蛋白32g/L，予补充人血白蛋白10g qd。",
    "请示上级医师后同意目前诊疗方案。",
    "与家属充分沟通，告知病情及预后，家属表示理解并签字。",
    "电子胃镜示慢性非萎缩性胃炎伴糜烂，HP阳性。",
    "骨髓穿刺结果回报：增生活跃，未见异常细胞。",
    "动态心电图示偶发室性早搏，最长RR间期1.8s。",
    "肺功能检查：FEV1/FVC 62%，提示阻塞性通气功能障碍。",
]

# Harder phrasing: colloquial or old terms, and names in free context without a cue word.
STD_COLLOQUIAL = [("艾滋", 1), ("花柳病", 2), ("杨梅疮", 1), ("HSV-II", 2), ("疱疹病毒2型", 2)]
PREGNANCY_COLLOQUIAL = [("小产", 1), ("打胎", 1), ("怀孕", 2), ("胎停", 1), ("生过两个孩子", 3), ("怀孕3个月", 2)]
FREE_NAME_CONTEXTS = ["与{n}沟通病情后", "经{n}同意后", "在{n}陪同下入院", "由{n}代诉病史", "{n}（患者之女）来电询问",
                      "嘱{n}按时复诊", "{n}于今日办理出院", "老伴{n}今年62岁，", "其单位经理{n}来院探视，",
                      "{n}先生（患者之夫）表示理解，", "家属称{n}认为"]
# Address forms of real delivery addresses (neural-chinese-address-parsing's train split was read for them):
# building-unit-room in digits or words, dash and underscore forms, village groups, firms.
ADDRESS_TAILS = ["{a}{k}幢{u}单元{r}室", "{a}{k}-{u}-{r}", "{a}{kz}幢{uz}单元", "{a}{k}栋_{u}单元_{r}",
                 "{a}二期{k}栋{r}", "{a}{k}号楼{u}层{r}房", "{a}五区{k}-{u}-{r}"]
VILLAGE_TAILS = ["{v}村{kz}队{r}号", "{v}村{kz}组"]
FIRMS = ["{w}电器有限公司", "{w}服饰厂", "{w}超市", "{w}汽车城{k}号"]
HOSPITAL_COLLOQUIAL = ["{c}市一院", "{c}市二院", "{c}附一院", "{c}妇保院", "{c}市中心医院"]

# A clinical lexicon beyond the generator's filler: measures that such words never become names.
CLINICAL_LEXICON = [
    "高血压", "高血糖", "高热惊厥", "白细胞减少", "白内障", "黄疸型肝炎", "黄体破裂", "石淋", "金黄色葡萄球菌",
    "常规护理", "方案调整", "周围神经病变", "周期性麻痹", "夏季皮炎", "余症同前", "任脉", "安宫牛黄丸", "康复训练",
    "文拉法辛", "明显好转", "平卧位", "尚可", "洪脉", "张力性气胸", "李斯特菌", "吴茱萸汤", "叶酸缺乏", "温经汤",
    "牛黄解毒片", "葛根汤", "严重感染", "武汉病毒所", "陆续出院", "计划生育", "支气管哮喘", "支架植入", "巴氏涂片",
    "丰隆穴", "羊水过少", "阿托品", "阿卡波糖", "母乳喂养", "印戒细胞癌", "危重症", "银屑病", "利多卡因", "呼吸衰竭",
    "干燥综合征", "甘露醇", "包虫病", "宁心安神", "单纯性肥胖", "季节性过敏", "涂片检查", "曲马多", "蓝氏贾第鞭毛虫",
    "游离甲状腺素", "辛伐他汀", "管型尿", "柴胡疏肝散", "蒙脱石散", "华法林钠", "房间隔缺损", "屈光不正", "解热镇痛",
    "时间窗", "司可巴比妥", "古典型霍乱", "吉西他滨", "车前子", "连续性血液净化", "麦角新碱", "景天三七", "党参",
    "卫生宣教", "米索前列醇", "全血细胞减少", "应激性溃疡", "边缘性人格", "商陆", "沙美特罗", "乐卡地平",
    "劳力性呼吸困难", "皮下气肿", "粟粒性肺结核", "满月脸", "闻及杂音", "区域阻滞", "海绵状血管瘤", "花粉过敏",
    "强直性脊柱炎", "普罗布考", "相对禁忌", "初步诊断", "门静脉高压", "查体合作", "麻醉苏醒", "迟发性运动障碍",
    "封闭治疗", "管理规范", "左心衰竭", "柳氮磺吡啶", "甘草酸二铵", "祝由", "包裹性积液", "符合诊断", "舒张压",
    "单纯疱疹", "季肋部", "成人斯蒂尔病",
]

# -- identifiers beyond the paper's seven ------------------------------------------------------------------
# Record numbers after their cue, as hospital systems print them (the placeholders are Synth.fill's); groups of four
# joined by spaces where cards print them so.
RECORD_NUMBERS = [("门诊号", "{d10}"), ("门诊号", "MZ{d8}"), ("标本号", "{d9}"), ("病案号", "{m11}"),
                  ("病案号", "{d6}"), ("医保卡号", "{d12}"), ("医保卡号", "{d4} {d4} {d4}"), ("检查号", "CT{d8}"),
                  ("ID号", "{d8}"), ("急诊号", "JZ{yyyy}{d6}"), ("病历号", "{d7}"), ("登记号", "{d8}"),
                  ("影像号", "MR{d8}"), ("影像号", "DR-{d7}"), ("病理号", "B{yyyy}-{d5}"), ("检验号", "{d10}"),
                  ("就诊卡号", "{d10}"), ("社保卡号", "{L}{d8}"), ("健康卡号", "{d4} {d4} {d4} {d4}"),
                  ("住院号", "ZY{yyyy}{d6}")]
# The visit's number in a note's header, by its cue.
HEADER_RECORD_FORMS = {"住院号": ["{d8}", "{d7}", "{d10}", "ZY{yyyy}{d6}"],
                       "门诊号": ["{d8}", "{d10}", "MZ-{d5}", "MZ{d8}"]}
IMPLANT_SERIALS = ["PJN{d6}S", "RLT{d6}", "{L}{L}{d8}"]

# Banks whose cards patients give for refunds, with their card BIN (62.. is UnionPay; 4 and 5 are Visa and
# MasterCard credit cards).
BANK_CARDS = [("中国工商银行", "622202"), ("中国建设银行", "621700"), ("中国农业银行", "622848"),
              ("中国银行", "621661"), ("招商银行", "622588"), ("交通银行", "622262"), ("中国邮政储蓄银行", "621799"),
              ("中国光大银行", "622660"), ("招商银行", "439225"), ("中信银行", "518212")]
ACCOUNT_CUES = ["银行卡号", "银行账号", "账号", "卡号", "借记卡", "开户账号", "信用卡"]

# Identity documents other than the resident ID card: (who holds it, cue, number template). Foreign passports
# follow their country's format (German and French numbers mix letters into the digits).
ID_DOCUMENTS = [("中国", "护照号", "E{d8}"), ("中国", "护照号码", "E{L}{d7}"), ("中国", "护照", "G{d8}"),
                ("美国", "护照号", "{d9}"), ("英国", "护照号", "{d9}"), ("日本", "护照号", "TK{d7}"),
                ("韩国", "护照号", "M{d8}"), ("俄罗斯", "护照号", "{d9}"), ("加拿大", "护照号码", "AB{d6}"),
                ("澳大利亚", "护照号", "PA{d7}"), ("德国", "护照号", "C{d2}X{d2}T{d2}"),
                ("法国", "护照号", "{d2}AB{d5}"), ("中国香港", "港澳居民来往内地通行证", "H{d8}"),
                ("中国香港", "回乡证", "H{d10}"), ("中国澳门", "往来港澳通行证", "C{d8}"),
                ("中国台湾", "台胞证", "{d8}"), ("中国台湾", "台湾居民来往大陆通行证", "{d8}"),
                ("中国", "军官证", "军字第{d7}号"), ("中国", "士兵证", "士字第{d7}号")]
# Practising certificates in a signature: a doctor's 15 digits open with the level (1 physician, 2 assistant), a
# nurse's 12 with the year of issue.
PRACTICE_CERTIFICATES = [("医师执业证书编码", "1{d14}"), ("执业证书编码", "2{d14}"), ("护士执业证书", "20{d10}")]

PLATE_REGIONS = list("京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼")
PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"   # no I or O on a plate
# World manufacturer identifiers of cars built in China (SAIC VW, FAW VW, Dongfeng Nissan, GAC Honda, SGM,
# Great Wall, BMW Brilliance, BYD), the first three characters of a VIN.
VIN_MAKERS = ["LSV", "LFV", "LGB", "LHG", "LSG", "LGW", "LBV", "LC0"]
VEHICLES = ["小型轿车", "电动自行车", "摩托车", "货车", "出租车", "越野车"]
# A road accident in a history: {plate} is the patient's or the other vehicle's plate.
ACCIDENT_CONTEXTS = ["驾驶{vehicle}（车牌号：{plate}）与一辆货车相撞", "骑电动车时被车牌号为{plate}的{vehicle}撞伤",
                     "乘坐{plate}{vehicle}时发生追尾", "步行时被一辆{vehicle}（{plate}）撞倒"]
INJURIES = ["头部外伤", "左下肢疼痛", "胸部挫伤", "右腕部肿痛", "腰背部疼痛"]

# Employers and schools: {city} a prefecture city, {w} a trade name, {n} a Chinese ordinal, {bank} a bank. Most
# official names begin with their city; people often drop it.
WORKPLACE_NAMES = {
    "school": ["{city}第{n}中学", "{city}{w}小学", "{road}小学", "{city}实验中学", "{city}职业技术学院",
               "{short_prov}大学"],
    "firm": ["{city}{w}{trade}有限公司", "{w}{trade}有限公司", "{city}{w}机械厂", "{w}纺织厂", "{city}{w}集团",
             "{prov}电力公司", "{w}大酒店", "{city}{w}超市", "{city}{w}建筑工程有限公司", "{bank}", "{bank}{city}分行"],
    "office": ["{city}公安局", "{city}{district}人民法院", "{city}税务局", "{city}{district}人民政府", "{city}日报社",
               "{city}自来水公司", "{city}{w}幼儿园"],
}
TRADE_WORDS = ["华星", "恒丰", "宏达", "金桥", "新世纪", "鸿运", "远大", "天成", "瑞丰", "永兴", "众信", "海通"]
TRADES = ["科技", "贸易", "纺织", "电子", "化工", "食品", "物流", "服饰", "机电"]
# How a note says where someone works or studies: {x} is the name. Each phrase has the kind of place it suits.
WORKPLACE_CONTEXTS = {
    "school": ["曾在{x}任教", "现在{x}任教", "为{x}退休教师", "毕业于{x}", "就读于{x}", "为{x}学生", "工作单位：{x}"],
    "firm": ["现为{x}职工", "系{x}退休职工", "在{x}上班", "就职于{x}", "为{x}员工", "于{x}退休", "工作单位：{x}",
             "曾在{x}工作"],
    "office": ["就职于{x}", "在{x}工作", "工作单位：{x}", "为{x}退休干部", "任职于{x}"],
}
RELATIVE_WORK = ["其子", "其女", "配偶", "其夫", "其妻"]
# A birth year said in a personal history ({y}).
BIRTH_YEAR_CONTEXTS = ["{y}年出生，", "出生于{y}年，", "生于{y}年，", "{y}年生人，", "出生年份：{y}，"]
# Links to a report or an image viewer, as printed in a note.
REPORT_URLS = ["https://pacs.zsyy.com.cn/report/view?id={d10}", "http://10.{d1}.{d1}.{d1}:8080/viewer?study={d12}",
               "https://yun.rmyy.org.cn/m/{d8}", "www.fyyy.cn/report/{d8}", "https://film.hxyy.net/s/{L}{d7}"]

# Numbers that look like identifiers and are none: relative times, doses and ranges, blood pressures, times of day
# alone, software versions, a year alone, ages under 90. {a}..{f} are drawn by the generator.
NOT_IDENTIFIERS = ["术后第{a}天，切口愈合良好，无红肿渗出。", "嘱{a}周后门诊复查。", "{a}天前复查血常规未见异常。",
                   "予氨溴索30mg口服，{a}-{b}次/日。", "超声示肝内低回声结节，大小约{c}-{d}cm。",
                   "血气分析：pH 7.{e}（参考值7.35-7.45）。", "今晨{hh}:{mm}复测血压{s}/{dia}mmHg。",
                   "护理评估系统v{a}.{b}.{f}自动评分：Braden {f}分。", "{year}年体检发现血糖升高。",
                   "{young}岁时行扁桃体切除术。", "输液速度{a}0-{b}0滴/分。", "{a}个月前曾于外院就诊。"]
